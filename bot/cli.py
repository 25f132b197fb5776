"""The `docsbot` command: index the docs, search them in a terminal chat, evaluate, show status.

    docsbot index [--source PATH|bundled] [--full]
    docsbot chat                      # interactive: each question prints the best passages
    docsbot ask [--json] "question"   # one question, same output (or one JSON object)
    docsbot eval --questions FILE [--k N] [--json] [--details FILE] [--answers] [--translate] [--expand]
                                      [--check-scope]
    docsbot status [--json]
    docsbot serve                     # Slack/Discord bots, reindex schedule, /healthz /readyz /metrics
    docsbot report [--since 7d] [--json]

Settings come from the environment / .env (see .env.example); errors print one line, the
details go to the log (LOG_LEVEL=DEBUG shows them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.quiet import quiet_third_party

quiet_third_party()

from bot.logs import secret_values, setup_logging
from bot.report import add_parser as add_report_parser
from core.answer_eval import (
    FactJudge,
    ScoredAnswer,
    answer_details,
    context_fact_proxy,
    evaluate_answers,
    format_answer_report,
    summarize_answers,
)
from core.config import Settings, load_settings
from core.embed_cache import EmbeddingCache, model_fingerprint, shipped_meta
from core.errors import DocsBotError, IndexEmptyError
from core.evaluation import Question, details, evaluate, format_report, load_questions, summarize
from core.local_llm import is_listening, is_local_default, local_llm_server, resolve_model
from core.models import Answer, Retrieval
from core.progress import ProgressTracker, ReindexProgress
from core.prompting import Turn
from core.service import RagService, open_service
from core.vllm_engine import run_vllm

log = logging.getLogger("docsbot")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except DocsBotError as exc:
        print(f"docsbot: {exc.user_message}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level, secret_values(settings))
    try:
        command: Command = args.run
        if args.needs_service:
            return asyncio.run(_with_service(settings, command, args))
        return asyncio.run(command(settings, args))
    except KeyboardInterrupt:
        return 130
    except DocsBotError as exc:
        log.debug("command failed", exc_info=True)
        print(f"docsbot: {terminal_sentence(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:  # a path it cannot use: DATA_DIR under a file, a read-only disk
        log.debug("command failed", exc_info=True)
        where = f": {exc.filename}" if exc.filename else ""
        print(
            f"docsbot: {exc.strerror or exc}{where} (check DATA_DIR and the paths in the settings)",
            file=sys.stderr,
        )
        return 1


def terminal_sentence(exc: DocsBotError) -> str:
    """An error's one line at the terminal, whose user is the operator: what to run where they
    can fix it (an empty index), else the sentence chat users read."""
    return exc.operator_message if isinstance(exc, IndexEmptyError) else exc.user_message


def terminal_text(answer: Answer) -> str:
    """An answer's text at the terminal: the operator's sentence for an index that is empty."""
    return IndexEmptyError.operator_message if answer.error == IndexEmptyError.code else answer.text


#: A command: `async def cmd_x(service_or_settings, args) -> exit status`. Commands run with an
#: open `RagService` unless their parser says `needs_service=False` (then they get the Settings).
Command = Callable[[Any, argparse.Namespace], Coroutine[Any, Any, int]]


async def _with_service(settings: Settings, command: Command, args: argparse.Namespace) -> int:
    async with open_service(settings) as service:
        return await command(service, args)


# --- commands --------------------------------------------------------------------------------


@dataclass
class _Sigterm:
    received: bool = False


@contextlib.contextmanager
def _sigterm_cancels_this_task() -> Iterator[_Sigterm]:
    """SIGTERM (a pod, CronJob or systemd unit being stopped) cancels the running command like
    Ctrl-C does, so its cleanup runs: a write in flight ends, child servers are stopped."""
    loop, this = asyncio.get_running_loop(), asyncio.current_task()
    assert this is not None
    sigterm = _Sigterm()

    def stop() -> None:
        sigterm.received = True
        this.cancel()

    loop.add_signal_handler(signal.SIGTERM, stop)
    try:
        yield sigterm
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def cmd_index(service: RagService, args: argparse.Namespace) -> int:
    bar = _ProgressBar()
    try:
        with _sigterm_cancels_this_task():
            run = await service.index(args.source, full=args.full, force=args.force, progress=bar.update)
    except asyncio.CancelledError:
        await service.stop_reindex(service.settings.shutdown_grace)  # the write in flight ends first
        bar.close()
        print("docsbot: stopped (SIGTERM); the run is recorded as interrupted", file=sys.stderr)
        return 143
    bar.close()
    summary = (
        f"{run.outcome}: {run.added} added, {run.changed} changed, {run.removed} removed, "
        f"{run.unchanged} unchanged pages; {run.embedded()}; "
        f"{run.errors} errors; {run.seconds:.1f} s"
    )
    print(summary if run.outcome == "ok" else f"{summary}\n{run.message}")
    return 0 if run.outcome == "ok" else 1


async def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from bot.serve import serve  # the chat libraries load only for `serve`

    return await serve(settings)


async def cmd_crawl(settings: Settings, args: argparse.Namespace) -> int:
    """Crawl the docs site into a folder of Markdown pages (the snapshot source's layout)."""
    from core.sources.crawler import SiteCrawler

    bar = _ProgressBar()
    crawler = SiteCrawler.from_settings(args.source or settings.docs_source, settings)
    result = await crawler.load(ProgressTracker(bar.update))
    bar.close()
    out = Path(args.out)
    await asyncio.to_thread(_write_pages, out, crawler.documents)
    print(
        f"{len(crawler.documents)} pages written to {out}; {len(result.errors)} errors; "
        f"{result.requests} requests"
    )
    for url, reason in list(result.errors.items())[:10]:
        print(f"  {url}: {reason}", file=sys.stderr)
    return 0 if crawler.documents else 1


def _write_pages(out: Path, documents: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for page_id, markdown in sorted(documents.items()):
        (out / page_id).write_text(markdown, encoding="utf-8")


async def cmd_chat(service: RagService, args: argparse.Namespace) -> int:
    status = await service.status()
    if status.chunks == 0:
        print(IndexEmptyError.operator_message, file=sys.stderr)
        return 1
    async with _terminal_llm(service, args.no_llm) as note:
        await service.warm_up()
        print(f"Milvus docs assistant: {status.pages} pages indexed. Ask a question; Ctrl-D quits.")
        if note:
            print(note)
        history: list[Turn] = []
        while True:
            try:
                question = await asyncio.to_thread(input, "\nyou> ")
            except EOFError:
                print()
                return 0
            if question.strip().lower() in {"quit", "exit", ":q"}:
                return 0
            if question.strip():
                answer = await _answer(service, question, history)
                history += [Turn("user", question), Turn("assistant", answer.text)]


async def cmd_ask(service: RagService, args: argparse.Namespace) -> int:
    await service.check_index()  # an index built by another model: one line, exit 1
    async with _terminal_llm(service, args.no_llm) as note:
        if note:
            print(note, file=sys.stderr)
        question = " ".join(args.question)
        if args.json:
            answer = await service.ask(question)
            print(json.dumps(answer_json(answer)))
        else:
            answer = await _answer(service, question, ())
    return ask_exit_status(answer)


def answer_json(answer: Answer) -> dict[str, Any]:
    """`docsbot ask --json`: one object. `cited` says whether the text cites the listed sources
    with [n] (False when they are only the nearest pages), and `citations` who put the [n] there:
    "model", "matched" (the model cited nothing; each paragraph cites the source its specifics
    come from) or null; `declined_by` is "gate", "scope_check", "model", "grounding", "meta_request" or null;
    `error` is null or a short code."""
    return {
        "answer": terminal_text(answer),
        "declined": answer.outcome == "not_covered",
        "declined_by": answer.declined_by,
        "sources": [
            {"number": s.number, "url": s.url, "title": s.title, "page_id": s.page_id} for s in answer.sources
        ],
        "cited": any(f"[{s.number}]" in answer.text for s in answer.sources),
        "citations": answer.citations or None,
        "error": answer.error,
        "outcome": answer.outcome,
    }


def ask_exit_status(answer: Answer) -> int:
    """0 when the question got its answer, a decline, or the LLM's failure explained with links
    (the command did its job); 1 for bad input or when the index itself could not be searched."""
    if answer.outcome in {"answered", "not_covered", "small_talk"}:
        return 0
    return 0 if (answer.error or "").startswith("llm_") else 1


async def cmd_llm_serve(settings: Settings, args: argparse.Namespace) -> int:
    """The LLM server in the foreground; needs no Milvus, so opens no service. Ctrl-C or SIGTERM
    stops the server process too (it is a child: left running, it would hold the port)."""
    sigterm = _Sigterm()
    try:
        with _sigterm_cancels_this_task() as sigterm:
            if args.engine == "vllm":
                return await run_vllm(settings)
            model = resolve_model(settings.local_llm_model_path, settings.data_dir)
            async with local_llm_server(
                model,
                settings.llm_model,
                settings.llm_base_url,
                settings.local_llm_threads,
                settings.local_llm_context,
            ) as process:
                print(
                    f"local LLM server for {settings.llm_model} at {settings.llm_base_url} (Ctrl-C stops it)",
                    flush=True,
                )
                await process.wait()
    except asyncio.CancelledError:
        if not sigterm.received:
            raise  # Ctrl-C: exit 130 like every command
        print("docsbot: LLM server stopped (SIGTERM)", file=sys.stderr)
        return 143
    return 0


@contextlib.asynccontextmanager
async def _terminal_llm(service: RagService, disabled: bool) -> AsyncIterator[str]:
    """Make sure the terminal has an LLM: start the embedded one when LLM_BASE_URL is the local
    default and nothing listens there; fall back to passages only, with a note, if that fails."""
    settings = service.settings
    if disabled:
        service.llm = None
        yield "(answer generation off: showing the best passages)"
        return
    if not is_local_default(settings.llm_base_url) or is_listening(settings.llm_base_url):
        yield ""
        return
    try:
        model = resolve_model(settings.local_llm_model_path, settings.data_dir)
        server = local_llm_server(
            model,
            settings.llm_model,
            settings.llm_base_url,
            settings.local_llm_threads,
            settings.local_llm_context,
        )
        await server.__aenter__()
    except DocsBotError as exc:
        log.debug("local LLM not started", exc_info=True)
        service.llm = None
        yield f"(passages only: the local LLM could not start: {exc.user_message})"
        return
    try:
        yield f"(answers by the local {settings.llm_model} model; production uses vLLM)"
    finally:
        await server.__aexit__(None, None, None)


async def _answer(service: RagService, question: str, history: Sequence[Turn]) -> Answer:
    """Print the answer and its sources. On a terminal the text streams in as it is written;
    piped, only the final text is printed (the streamed text can still hold what the final one
    drops: a citation of a source that doesn't exist, the model's own "Sources:" line)."""
    answer: Answer | None = None
    streamed = False
    live = sys.stdout.isatty()
    async for part in service.stream(question, history):
        if isinstance(part, Answer):
            answer = part
        elif live:
            streamed = True
            print(part, end="", flush=True)
    assert answer is not None
    if streamed:
        print()
    if answer.outcome == "answered" and service.llm is None and answer.retrieval is not None:
        print(render_passages(answer.retrieval))
        return answer
    if not streamed:
        print(terminal_text(answer))
    elif answer.outcome != "answered":  # cut off: the part that streamed is on screen already
        print(f"\n{answer.text.rsplit(chr(10) * 2, 1)[-1]}")
    if answer.sources:
        print("\nSources:")
        for source in answer.sources:
            print(f"  [{source.number}] {source.heading}: {source.url}")
    return answer


def render_passages(retrieval: Retrieval, width: int = 100) -> str:
    """The best passages with their links (the answer in passages-only mode). Questions that are
    not covered never get here: the service's not-covered answer names the nearest pages."""
    lines = []
    for n, hit in enumerate(retrieval.hits, start=1):
        lines.append(f"[{n}] {hit.chunk.heading}")
        lines.append(f"    {hit.chunk.url}")
        body = " ".join(hit.chunk.text.split())
        lines.append(textwrap.indent(textwrap.fill(textwrap.shorten(body, 400), width - 4), "    "))
    lines.append(f"({retrieval.seconds * 1000:.0f} ms)")
    return "\n".join(lines)


async def cmd_eval(service: RagService, args: argparse.Namespace) -> int:
    questions = load_questions(args.questions)
    async with contextlib.AsyncExitStack() as stack:
        needs_llm = args.answers or args.translate or args.expand or args.check_scope
        if needs_llm and (note := await stack.enter_async_context(_terminal_llm(service, disabled=False))):
            print(note, file=sys.stderr)
        # --translate / --expand: retrieval as questions get it, with the LLM's help
        search = (
            functools.partial(
                service.retrieve,
                translate=args.translate,
                expand=args.expand,
                check_scope=args.check_scope,
            )
            if args.translate or args.expand
            else service.search
        )
        judge = functools.partial(service.judge, check_scope=args.check_scope)
        judged = await evaluate(questions, search, judge, k=args.k, passages=service.settings.top_k)
        summary = summarize(judged)
        summary["context_fact_proxy"] = context_fact_proxy(judged)
        if args.translate:
            summary["translated"] = sum(1 for j in judged if j.searched_in_english)
        if args.expand:
            summary["expanded"] = sum(1 for j in judged if j.expanded_with)
        if args.check_scope:
            summary["declined_by_scope_check"] = sum(
                1 for j in judged if j.decision is not None and j.decision.by == "scope_check"
            )
        answers: dict[str, Any] = {}
        rows = details(judged)
        if args.answers:
            answers, scored = await _eval_answers(service, questions, verbose=not args.json)
            answered = {row.question.id: answer_details(row) for row in scored}
            rows = [row | {"answer": answered.get(row["id"])} for row in rows]
    if args.details:
        lines = "".join(json.dumps(row) + "\n" for row in rows)
        await asyncio.to_thread(Path(args.details).write_text, lines, encoding="utf-8")
    if args.json:
        summary.pop("misses")
        print(json.dumps(summary | answers))
    else:
        print(format_report(summary))
        if answers:
            print("\n" + format_answer_report(answers))
    return 0


async def _eval_answers(
    service: RagService, questions: list[Question], verbose: bool
) -> tuple[dict[str, Any], list[ScoredAnswer]]:
    """`eval --answers`: generate every answer, score it on its facts (proxy, and the judge when
    JUDGE_BASE_URL is set), and return the answer keys of the report and the scored answers."""

    def show(row: ScoredAnswer) -> None:
        if verbose:
            proxy = "-" if row.proxy_mean is None else f"{row.proxy_mean:.2f}"
            print(f"{row.question.id} {row.answer.outcome:<12} proxy={proxy:<4} {row.answer.text[:100]!r}")

    judge = FactJudge.from_settings(service.settings)
    try:
        rows = await evaluate_answers(questions, service.ask, judge, on_row=show)
    finally:
        if judge is not None:
            await judge.close()
    return summarize_answers(rows, service.settings.llm_model, judge.model if judge else ""), rows


async def cmd_status(service: RagService, args: argparse.Namespace) -> int:
    status = await service.status()
    run = status.last_run
    last_run = None
    if run is not None:
        keys = ("outcome", "trigger", "added", "changed", "removed", "unchanged", "errors", "seconds")
        last_run = {key: asdict(run)[key] for key in keys} | {
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "source": run.source,
            "requests": run.requests,
            "message": run.message,
        }
    if args.json:
        print(
            json.dumps(
                {
                    "uri": status.uri,
                    "collection": status.collection,
                    "embedding_model": status.embedding_model,
                    "hybrid": status.hybrid,
                    "pages": status.pages,
                    "chunks": status.chunks,
                    "last_run": last_run,
                }
            )
        )
        return 0
    print(f"store:      {status.uri} (collection {status.collection})")
    print(f"embedding:  {status.embedding_model}")
    print(f"search:     {'hybrid dense + BM25' if status.hybrid else 'dense only'}")
    print(f"indexed:    {status.pages} pages, {status.chunks} chunks")
    if last_run is None:
        print("last run:   never")
    else:
        print(
            f"last run:   {last_run['outcome']} at {last_run['finished_at']} from {last_run['source']}: "
            f"{last_run['added']} added, {last_run['changed']} changed, {last_run['removed']} removed, "
            f"{last_run['unchanged']} unchanged, {last_run['errors']} errors, {last_run['seconds']} s "
            f"({last_run['trigger']})"
        )
        if run is not None and run.message:
            print(f"            {run.message}")
    running = service.running_reindex
    if running is not None:
        print(f"reindexing: {running.progress.describe()}")
    return 0


async def cmd_cache(settings: Settings, args: argparse.Namespace) -> int:
    """The passage-vector cache: size, hits, and whether the shipped snapshot vectors apply."""
    fingerprint = await asyncio.to_thread(
        model_fingerprint, settings.embedding_model, settings.query_instruction
    )
    shipped = await asyncio.to_thread(shipped_meta)
    shipped_applies = shipped is not None and shipped.get("fingerprint_key") == fingerprint.key
    path = settings.data_dir / "embeddings.sqlite3"
    stats = None
    if path.exists():
        cache = EmbeddingCache(path, settings.embedding_cache_max_mb * 2**20)
        stats = await asyncio.to_thread(cache.stats)
        cache.close()
    looked_up = (stats.hits + stats.shipped_hits + stats.misses) if stats else 0
    report = {
        "path": str(path),
        "model": settings.embedding_model,
        "fingerprint": fingerprint.key,
        "vectors": stats.rows if stats else 0,
        "mb": round(stats.bytes / 2**20, 1) if stats else 0.0,
        "max_mb": settings.embedding_cache_max_mb,
        "hits": stats.hits if stats else 0,
        "shipped_hits": stats.shipped_hits if stats else 0,
        "misses": stats.misses if stats else 0,
        "hit_rate": round((looked_up - stats.misses) / looked_up, 3) if stats and looked_up else None,
        "shipped_vectors": int(str(shipped.get("passages", 0))) if shipped_applies and shipped else 0,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    rate = "n/a" if report["hit_rate"] is None else f"{report['hit_rate']:.1%}"
    print(
        f"cache:   {report['vectors']} vectors, {report['mb']} MB of {report['max_mb']} MB ({report['path']})"
    )
    print(
        f"lookups: {report['hits']} cached + {report['shipped_hits']} shipped hits, "
        f"{report['misses']} encoded (hit rate {rate})"
    )
    shipped_line = (
        f"{report['shipped_vectors']} bundled-snapshot vectors apply to {settings.embedding_model}"
        if shipped_applies
        else f"none for {settings.embedding_model} (they are for the default model)"
    )
    print(f"shipped: {shipped_line}")
    return 0


# --- plumbing --------------------------------------------------------------------------------


class _ProgressBar:
    """A tqdm bar on a terminal, nothing otherwise (the summary line is printed either way)."""

    def __init__(self) -> None:
        self._bar: Any = None

    def update(self, progress: ReindexProgress) -> None:
        if not sys.stderr.isatty() or progress.phase == "starting":
            return
        if self._bar is not None and self._bar.desc != progress.phase:
            self.close()
        if self._bar is None:
            from tqdm import tqdm

            unit = "chunk" if progress.phase in {"embedding", "deleting", "done"} else "page"
            self._bar = tqdm(unit=unit, desc=progress.phase, file=sys.stderr)
        if self._bar.unit == "chunk":
            self._bar.total, self._bar.n = progress.chunks_total, progress.chunks_embedded
        else:
            self._bar.total, self._bar.n = progress.pages_seen, progress.pages_fetched
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _setup_logging(level: str, secrets: Sequence[str] = ()) -> None:
    setup_logging(level, secrets)  # JSON lines when stderr is not a terminal; secrets redacted
    floor = max(logging.WARNING, logging.getLevelName(level))
    noisy = ("milvus_lite", "faiss", "sentence_transformers", "httpx", "httpx2", "openai", "urllib3")
    for name in (*noisy, "apscheduler", "aiohttp.access"):
        logging.getLogger(name).setLevel(floor)
    logging.getLogger("pymilvus").setLevel(max(logging.ERROR, floor))  # its warnings are Lite noise


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docsbot", description="Milvus docs assistant")
    parser.set_defaults(needs_service=True)  # commands that don't open the service say so below
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="index the docs (incremental by page content hash)")
    index.add_argument(
        "--source",
        help="a docs site URL, 'bundled' or a folder of Markdown pages (default: DOCS_SOURCE)",
    )
    index.add_argument("--full", action="store_true", help="drop the collection and index everything")
    index.add_argument("--force", action="store_true", help="accept deletions the safety gate would refuse")
    index.set_defaults(run=cmd_index)

    chat = commands.add_parser("chat", help="interactive terminal session with cited answers")
    chat.add_argument("--no-llm", action="store_true", help="show the best passages, no generation")
    chat.set_defaults(run=cmd_chat)

    ask = commands.add_parser("ask", help="answer one question and exit")
    ask.add_argument("question", nargs="+")
    ask.add_argument("--no-llm", action="store_true", help="show the best passages, no generation")
    ask.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: answer, declined, sources, cited, error, outcome",
    )
    ask.set_defaults(run=cmd_ask)

    llm = commands.add_parser("llm", help="the embedded local LLM server")
    llm_commands = llm.add_subparsers(dest="llm_command", required=True)
    serve = llm_commands.add_parser(
        "serve", help="run the LLM server for LLM_BASE_URL in the foreground (llama.cpp or vLLM)"
    )
    serve.add_argument(
        "--engine",
        choices=["llama.cpp", "vllm"],
        default="llama.cpp",
        help="llama.cpp: the embedded CPU server (default); vllm: vLLM for LLM_MODEL (needs a GPU)",
    )
    serve.set_defaults(run=cmd_llm_serve, needs_service=False)

    ev = commands.add_parser("eval", help="retrieval metrics on a JSONL question set")
    ev.add_argument(
        "--questions", required=True, help="JSONL file (format of shared/eval/dev_questions.jsonl)"
    )
    ev.add_argument("--k", type=int, default=10)
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--answers", action="store_true", help="generate answers too (needs the LLM)")
    ev.add_argument(
        "--translate",
        action="store_true",
        help="search questions in other languages in English, translated by the LLM, as answers do",
    )
    ev.add_argument(
        "--expand",
        action="store_true",
        help="also search the docs' own terms for each question, named by the LLM, as answers do",
    )
    ev.add_argument(
        "--check-scope",
        action="store_true",
        help="let the LLM check the scope of questions the gate is unsure about and of questions "
        "whether Milvus has something, as answers do",
    )
    ev.add_argument(
        "--details",
        metavar="FILE",
        help="also write one JSON line per question: rank, top pages, the gate's decision and reason "
        "(with --answers, the answer and its scores too)",
    )
    ev.set_defaults(run=cmd_eval)

    crawl = commands.add_parser(
        "crawl", help="crawl the docs site into Markdown pages (refreshes a snapshot)"
    )
    crawl.add_argument("--out", required=True, help="folder to write <page id>.md files into")
    crawl.add_argument("--source", help="docs site URL (default: DOCS_SOURCE)")
    crawl.set_defaults(run=cmd_crawl, needs_service=False)

    serve_bots = commands.add_parser(
        "serve", help="run the Slack/Discord bots and the reindex schedule (until Ctrl-C / SIGTERM)"
    )
    serve_bots.set_defaults(run=cmd_serve, needs_service=False)  # it builds its own service

    cache = commands.add_parser("cache", help="the passage-vector cache: size, hits, shipped vectors")
    cache.add_argument("--json", action="store_true")
    cache.set_defaults(run=cmd_cache, needs_service=False)

    status = commands.add_parser("status", help="what is indexed and how the last run went")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=cmd_status)

    add_report_parser(commands)
    return parser
