"""Rebuild the bundled docs snapshot (core/sources/data/milvus-docs-en.tar.xz) from a folder.

    python scripts/bundle_snapshot.py ../shared/milvus-docs

Packs every *.md file (paths relative to the folder) plus README.md with the source commit, in a
deterministic order with fixed timestamps so an unchanged folder gives a byte-identical archive.
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "core" / "sources" / "data" / "milvus-docs-en.tar.xz"


def main(folder: str) -> None:
    root = Path(folder)
    files = sorted(p for p in root.rglob("*.md") if p.is_file())
    with tarfile.open(OUT, "w:xz", preset=9) as tar:
        for path in files:
            data = path.read_bytes()
            info = tarfile.TarInfo(str(path.relative_to(root)))
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    print(f"{OUT}: {len(files)} files, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/milvus-docs")
