"""`docsbot serve`: the long-running process with the chat adapters and the reindex schedule.

Start-up serves at once: check that at least one adapter is configured, open the service (a
Milvus server is connected in the background) and the records store, start the ops server
(/healthz /readyz /metrics), the schedule (reindex, daily records pruning, weekly report) and
each adapter under a supervisor (a crash is logged and the adapter restarted with backoff,
without touching the others). Then, in the background, `start_up` waits (backoff, logging what
it waits for) until a Milvus server answers and for the LLM server, and indexes an empty index
(else warms the model up). Meanwhile questions get one honest sentence (with links once the
index is up) and /readyz names what is missing.

SIGTERM or SIGINT: stop taking new questions (they get a short "restarting" reply), give the
ones in flight SHUTDOWN_GRACE seconds, cancel the rest, then close everything in reverse order
(adapters, schedule, a running reindex, ops server, records, service) and exit 0. A second
signal skips the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol

import aiohttp

from bot.chat.flow import ChatCore
from bot.metrics import Metrics
from bot.ops import OpsServer
from bot.report import weekly_report_text
from bot.scheduler import ReindexScheduler
from core.config import Settings
from core.deferred_client import DeferredMilvusClient
from core.errors import ConfigError, DocsBotError, StoreLockedError
from core.records import Records
from core.service import RagService, open_service
from core.store import ChunkStore

log = logging.getLogger("docsbot.serve")

#: Restart backoff for a crashed adapter: 1, 2, 4 ... capped at this many seconds.
MAX_RESTART_DELAY = 60.0
#: After this long without an LLM server, start-up logs a warning and stops probing (answers
#: fall back to links until it is up; /readyz checks it on every call). Milvus is waited for
#: as long as it takes.
DEPENDENCY_WAIT = 300.0
#: Backoff between dependency probes: 1, 2, 4 ... capped at this many seconds.
MAX_PROBE_DELAY = 15.0


class Adapter(Protocol):
    """A chat front end. `run` serves until cancelled; an exception means it crashed."""

    name: str

    async def run(self) -> None: ...

    async def post(self, channel: str, text: str) -> None:
        """Post an operator message (the weekly report) to a channel."""
        ...


AdapterFactory = Callable[[ChatCore], list[Adapter]]


def adapter_names(settings: Settings) -> list[str]:
    """The adapters the settings configure; ConfigError listing what to set when none is."""
    names = []
    if settings.slack_bot_token.get_secret_value():
        names.append("slack")
    if settings.discord_token.get_secret_value():
        names.append("discord")
    if not names:
        raise ConfigError(
            "nothing to serve: set SLACK_BOT_TOKEN (with SLACK_APP_TOKEN for Socket Mode, or "
            "SLACK_SIGNING_SECRET with SLACK_MODE=http) and/or DISCORD_TOKEN"
        )
    return names


def configured_adapters(core: ChatCore) -> list[Adapter]:
    """The adapters whose settings are present (imported lazily: each pulls its SDK)."""
    names = adapter_names(core.settings)
    adapters: list[Adapter] = []
    if "slack" in names:
        from bot.slack.adapter import SlackAdapter

        adapters.append(SlackAdapter(core))
    if "discord" in names:
        from bot.discord.adapter import DiscordAdapter

        adapters.append(DiscordAdapter(core))
    return adapters


async def supervise(
    adapter: Adapter,
    *,
    first_delay: float = 1.0,
    on_restart: Callable[[str], None] | None = None,
) -> None:
    """Run an adapter forever: restart it with exponential backoff whenever it crashes."""
    delay = first_delay
    while True:
        started = asyncio.get_running_loop().time()
        try:
            await adapter.run()
            log.warning("adapter %s stopped by itself; restarting in %.0f s", adapter.name, delay)
        except asyncio.CancelledError:
            raise
        except ConfigError:
            raise
        except Exception:
            log.exception("adapter %s crashed; restarting in %.0f s", adapter.name, delay)
        if asyncio.get_running_loop().time() - started > 5 * MAX_RESTART_DELAY:
            delay = first_delay  # it ran fine for a good while: start the backoff over
        await asyncio.sleep(delay)
        if on_restart is not None:
            on_restart(adapter.name)
        delay = min(delay * 2, MAX_RESTART_DELAY)


@contextlib.asynccontextmanager
async def open_chat_core(settings: Settings, service: RagService) -> AsyncIterator[ChatCore]:
    records = Records(settings.records_path, settings.records_retention_days)
    try:
        records.prune()
        yield ChatCore(settings, service, records)
    finally:
        records.close()


# --- start-up: wait for the dependencies -------------------------------------------------------


async def start_up(settings: Settings, service: RagService, milvus: DeferredMilvusClient | None) -> None:
    """What `serve` does in the background once the chats are up: connect a Milvus server
    (retrying until it answers), index an empty index or warm the model up, and wait for the
    LLM server (which only logs: answers fall back to links while it is down)."""
    llm = asyncio.create_task(wait_for_llm(settings), name="wait-for-llm")
    try:
        if milvus is not None:
            await connect_milvus(settings, milvus)
        try:
            await _prepare_index(service)
        except ConfigError:
            raise  # e.g. an index built by another embedding model: no restart helps
        except DocsBotError as exc:  # Milvus flapped: questions say so; the schedule retries
            log.warning("start-up index check / warm-up failed: %s", exc)
        await llm
    finally:
        llm.cancel()


async def wait_for_llm(
    settings: Settings, *, max_wait: float = DEPENDENCY_WAIT, first_delay: float = 1.0
) -> bool:
    """Wait until the LLM server answers; False, with a warning, after `max_wait` seconds."""
    ok = await _wait_until(
        "the LLM server", settings.llm_base_url, _llm_probe(settings), max_wait, first_delay
    )
    if not ok:
        log.warning(
            "the LLM server at %s did not answer within %.0f s: serving anyway (answers fall back to "
            "links until it is up; /readyz reports it)",
            settings.llm_base_url,
            max_wait,
        )
    return ok


async def connect_milvus(
    settings: Settings, client: DeferredMilvusClient, *, first_delay: float = 1.0
) -> None:
    """Connect `client` to the Milvus server, retrying with backoff for as long as it takes
    (questions get "the search index is not available right now" meanwhile)."""

    async def probe() -> None:
        await asyncio.wait_for(asyncio.to_thread(client.connect), settings.milvus_timeout + 5)

    await _wait_until("Milvus", _without_password(settings.milvus_uri), probe, math.inf, first_delay)


def _without_password(uri: str) -> str:
    scheme, sep, rest = uri.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else uri


async def _wait_until(
    what: str, where: str, probe: Callable[[], Awaitable[None]], max_wait: float, first_delay: float
) -> bool:
    """Call `probe` until it succeeds (True) or `max_wait` seconds pass (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait
    delay, attempt = first_delay, 1
    while True:
        try:
            await probe()
        except StoreLockedError:
            raise
        except Exception as exc:
            left = deadline - loop.time()
            if left <= 0:
                return False
            wait = min(delay, left)
            log.info(
                "waiting for %s at %s (attempt %d, next try in %.0f s): %s", what, where, attempt, wait, exc
            )
            await asyncio.sleep(wait)
            delay, attempt = min(delay * 2, MAX_PROBE_DELAY), attempt + 1
            continue
        if attempt > 1:
            log.info("%s at %s is up", what, where)
        return True


def _llm_probe(settings: Settings) -> Callable[[], Awaitable[None]]:
    async def probe() -> None:
        url = settings.llm_base_url.rstrip("/") + "/models"
        headers = {"Authorization": f"Bearer {settings.llm_api_key.get_secret_value() or 'not-needed'}"}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(url, headers=headers) as response,
        ):
            if response.status != 200:
                raise ConnectionError(f"GET {url} answered {response.status}")

    return probe


# --- the process -------------------------------------------------------------------------------


async def serve(settings: Settings, adapters: AdapterFactory | None = None) -> int:
    """Run until SIGTERM/SIGINT, then shut down gracefully; returns the exit status (0).

    `adapters` builds the chat adapters from the chat core (default: the configured ones).
    """
    if adapters is None:
        adapter_names(settings)  # fail now, not after minutes of waiting, when none is configured
        adapters = configured_adapters
    stopping = _StopSignal()
    stopping.install()
    try:
        return await _serve(settings, adapters, stopping)
    finally:
        stopping.uninstall()


async def _serve(settings: Settings, make_adapters: AdapterFactory, stopping: _StopSignal) -> int:
    async with contextlib.AsyncExitStack() as stack:
        milvus, store = None, None
        if "://" in settings.milvus_uri:  # a server: connected in the background by start_up
            milvus = DeferredMilvusClient(
                settings.milvus_uri, settings.milvus_token.get_secret_value(), settings.milvus_timeout
            )
            store = ChunkStore(milvus.as_milvus_client(), settings.collection, settings.milvus_uri)
        service = await stack.enter_async_context(open_service(settings, store=store))
        core = await stack.enter_async_context(open_chat_core(settings, service))
        adapters = make_adapters(core)
        metrics = Metrics()
        metrics.attach(core)
        if settings.ops_port:
            ops = OpsServer(service, metrics, core, host=settings.ops_host, port=settings.ops_port)
            await ops.start()
            stack.push_async_callback(ops.stop)
        else:
            log.info("ops server off (OPS_PORT=0)")
        stack.push_async_callback(_stop_reindex, service)
        scheduler = ReindexScheduler(settings, service)
        if settings.report_channel:
            scheduler.add_weekly_report(partial(post_weekly_report, core, adapters))
        scheduler.add_daily("prune-records", partial(prune_records, core.records))
        scheduler.start()
        stack.callback(scheduler.shutdown)
        tasks = [
            asyncio.create_task(
                supervise(adapter, on_restart=metrics.on_restart), name=f"adapter-{adapter.name}"
            )
            for adapter in adapters
        ]
        stack.push_async_callback(_cancel, tasks)
        log.info("serving: %s", ", ".join(adapter.name for adapter in adapters))
        starting = asyncio.create_task(start_up(settings, service, milvus), name="start-up")
        stack.push_async_callback(_cancel, [starting])
        failed = await stopping.wait_or_fail([*tasks, starting])
        if failed is not None:  # invalid configuration (an adapter's, the index's): no restart helps
            raise failed
        cancelled = await core.drain(0.0 if stopping.hurry else settings.shutdown_grace)
        log.info("shutting down (%d question(s) cancelled)", cancelled)
    log.info("stopped")
    return 0


async def _prepare_index(service: RagService) -> None:
    """Index now when the index is empty, else warm the model up (the first answer is not slow)."""
    await service.check_index()  # an index built by another model: a clear start-up failure
    if (await service.status()).chunks == 0:
        log.warning(
            "the index is empty: indexing %s now (questions get 'not indexed yet' meanwhile)",
            service.settings.docs_source,
        )
        service.start_reindex(trigger="startup")
    else:
        await service.warm_up()


async def prune_records(records: Records) -> None:
    """The daily retention job: delete records older than RECORDS_RETENTION_DAYS; never raises."""
    try:
        removed = await asyncio.to_thread(records.prune)
        log.info("records retention: %d question(s) older than the retention period deleted", removed)
    except Exception:
        log.exception("pruning the records failed")


async def post_weekly_report(core: ChatCore, adapters: Sequence[Adapter]) -> None:
    """Post the weekly report to REPORT_CHANNEL (`slack:C123` or `discord:123`); never raises."""
    platform, _, channel = core.settings.report_channel.partition(":")
    adapter = next((a for a in adapters if a.name == platform), None)
    try:
        if adapter is None:
            raise RuntimeError(f"REPORT_CHANNEL names {platform}, which is not configured")
        await adapter.post(channel, await weekly_report_text(core))
        log.info("weekly report posted to %s", core.settings.report_channel)
    except Exception:
        log.exception("the weekly report could not be posted to %s", core.settings.report_channel)


async def _stop_reindex(service: RagService) -> None:
    """Stop a running reindex; a Milvus write in flight gets up to SHUTDOWN_GRACE seconds to
    finish before the lock, the lease and the store are released (the next run resumes it)."""
    await service.stop_reindex(service.settings.shutdown_grace)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the adapter supervisors and wait for them (adapters close their clients)."""
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, Exception):
            log.warning("%s failed while stopping: %s", task.get_name(), result)


class _StopSignal:
    """SIGTERM/SIGINT -> an event; a second signal sets `hurry` (skip the grace period)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.hurry = False
        self._loop = asyncio.get_running_loop()
        self._installed: list[signal.Signals] = []

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.add_signal_handler(sig, self._received, sig)
                self._installed.append(sig)

    def uninstall(self) -> None:
        for sig in self._installed:
            self._loop.remove_signal_handler(sig)

    def _received(self, sig: signal.Signals) -> None:
        if self.event.is_set():
            log.warning("%s again: stopping without waiting for answers in flight", sig.name)
            self.hurry = True
            return
        log.info("%s: stopping (new questions are turned away, answers in flight may finish)", sig.name)
        self.event.set()

    async def wait_or_fail(self, tasks: list[asyncio.Task[None]]) -> BaseException | None:
        """Wait for a stop signal, or for one of `tasks` to fail (its exception is returned).
        A task that ends normally (start-up) is simply done; supervisors end only on a
        ConfigError."""
        pending = set(tasks)
        stop = asyncio.ensure_future(self.event.wait())
        try:
            while not stop.done():
                done, _ = await asyncio.wait({stop, *pending}, return_when=asyncio.FIRST_COMPLETED)
                for task in done - {stop}:
                    pending.discard(task)  # type: ignore[arg-type]
                    if not task.cancelled() and task.exception() is not None:
                        return task.exception()
        finally:
            stop.cancel()
        return None
