"""The README's settings table lists every setting with its default (core/config.py is the truth)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from core.config import Settings

README = Path(__file__).resolve().parents[1] / "README.md"
HEADER = "| setting | default | meaning |"


def settings_table() -> dict[str, str]:
    """NAME -> the default cell's text for that name, from the README's settings table. A row
    may name several settings (`A`, `B` or `A` / `B`) with as many defaults, in order."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER) + 2
    rows: dict[str, str] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        defaults = _split_defaults(cells[1], len(names))
        rows.update(zip(names, defaults, strict=True))
    return rows


def _split_defaults(cell: str, count: int) -> list[str]:
    if count == 1:
        return [cell]
    for separator in (" / ", ", "):
        parts = cell.split(separator)
        if len(parts) == count:
            return parts
    raise AssertionError(f"README settings table: {count} settings but defaults {cell!r}")


def _shown(value: Any) -> str:
    """A default as the README writes it."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return f"./{value}" if not value.is_absolute() else str(value)
    if value in ("", None):
        return "empty"
    return str(value)


def _normal(cell: str) -> str:
    """The README cell without code marks and notes: "`0` (all cores)" -> "0"."""
    cell = re.sub(r"\s*\(.*\)\s*$", "", cell.strip())
    return cell.replace("`", "").replace("\\|", "|").strip()


def _same(cell: str, shown: str) -> bool:
    written = {_normal(cell), cell.replace("`", "").strip()}
    if {shown, shown.removeprefix("./")} & written:
        return True
    try:
        return float(_normal(cell)) == float(shown)
    except ValueError:
        return False


def test_every_setting_is_in_the_readme_table() -> None:
    documented = settings_table()
    missing = sorted(name.upper() for name in Settings.model_fields if name.upper() not in documented)
    assert not missing, f"add these to the README settings table: {missing}"
    unknown = sorted(set(documented) - {name.upper() for name in Settings.model_fields})
    assert not unknown, f"the README settings table names settings that don't exist: {unknown}"


def test_the_readme_table_shows_each_default() -> None:
    documented = settings_table()
    wrong = {}
    for name, field in Settings.model_fields.items():
        cell = documented.get(name.upper())
        if cell is None:
            continue
        if not _same(cell, _shown(field.default)):
            wrong[name.upper()] = (cell, _shown(field.default))
    assert not wrong, f"README default != Settings default: {wrong}"
