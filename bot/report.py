"""`docsbot report`: the usage report of the records store, as text or JSON (core/report.py).

docsbot report                 # the last 7 days
docsbot report --since 30d --json

`docsbot serve` posts the weekly one to REPORT_CHANNEL (`weekly_report_text`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta

from bot.chat.flow import ChatCore
from core.config import Settings
from core.embedding import SentenceTransformerEmbedder
from core.records import Records
from core.report import DEFAULT_SIMILARITY, Report, build_report, format_text, parse_since


def make_report(settings: Settings, since: datetime, similarity: float = DEFAULT_SIMILARITY) -> Report:
    """Read the records (no Milvus needed) and build the report; the embedding model is only
    loaded when there are declined or downvoted questions to group."""
    records = Records(settings.records_path)
    try:
        rows = records.questions(since)
    finally:
        records.close()
    embedder = SentenceTransformerEmbedder(
        settings.embedding_model, device=settings.embedding_device, batch_size=settings.embedding_batch_size
    )
    return build_report(rows, embedder, since=since, similarity=similarity)


async def weekly_report_text(core: ChatCore, days: int = 7) -> str:
    """The report of the last `days` days, from the open records store and loaded model."""
    since = datetime.now(UTC) - timedelta(days=days)
    rows = await asyncio.to_thread(core.records.questions, since)
    report = await asyncio.to_thread(build_report, rows, core.service.embedder, since=since)
    return f"docsbot: the last {days} days\n\n{format_text(report)}"


async def report_command(settings: Settings, args: argparse.Namespace) -> int:
    """`docsbot report`: reads the records file only (no Milvus, so no service is opened)."""
    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(f"docsbot: {exc}", file=sys.stderr)
        return 2
    if not settings.records_path.exists():
        print(
            f"docsbot: no records yet at {settings.records_path} (`docsbot serve` writes them)",
            file=sys.stderr,
        )
        return 1
    report = await asyncio.to_thread(make_report, settings, since, args.similarity)
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        print(format_text(report))
    return 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report", help="questions per day, decline and thumbs-down rates, slowest answers, knowledge gaps"
    )
    report.add_argument("--since", default="7d", help="7d, 24h, 2w or a date (default 7d)")
    report.add_argument("--json", action="store_true")
    report.add_argument(
        "--similarity",
        type=float,
        default=DEFAULT_SIMILARITY,
        help=f"cosine at which questions count as the same gap (default {DEFAULT_SIMILARITY})",
    )
    report.set_defaults(run=report_command, needs_service=False)
