"""The ops server of `docsbot serve`: /healthz, /readyz and /metrics on OPS_HOST:OPS_PORT.

- `/healthz`: 200 while the process runs (the Docker HEALTHCHECK and liveness probes).
- `/readyz`: 200 when it can answer: Milvus reachable with the collection loaded and not empty,
  the LLM server reachable (`GET {LLM_BASE_URL}/models`), and not shutting down. Each check has
  its own timeout; the JSON body says which failed and why in one sentence, with status 503
  (exception text goes to the log only).
- `/metrics`: the Prometheus text format (bot/metrics.py).

It binds 127.0.0.1 by default: put a reverse proxy or the scraper on the same host/network.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from aiohttp import web

from bot.chat.flow import ChatCore
from bot.metrics import CONTENT_TYPE, Metrics
from core.errors import NotReady, StoreError
from core.service import RagService
from core.store import ChunkStore

log = logging.getLogger("docsbot.ops")

#: Seconds each readiness check may take before it counts as failed.
CHECK_TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    """The result of one readiness check."""

    ok: bool
    detail: str
    seconds: float


class OpsServer:
    """The aiohttp app with the three endpoints. `await start()`, then `await stop()`."""

    def __init__(
        self,
        service: RagService,
        metrics: Metrics,
        core: ChatCore | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        check_timeout: float = CHECK_TIMEOUT,
    ) -> None:
        self.service = service
        self.metrics = metrics
        self.core = core
        self.host = host
        self.port = port  # 0: any free port (the bound one is in `url` after start)
        self.check_timeout = check_timeout
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)  # explicit: GET-only, no body is needed
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_endpoint)
        return app

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.check_timeout))
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{self.host}:{port}"
        log.info("ops server on %s (/healthz /readyz /metrics)", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    # --- endpoints ---------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        checks = await self.check()
        failed = [name for name, check in checks.items() if not check.ok]
        self.metrics.ready.set(0 if failed else 1)
        body: dict[str, Any] = {
            "ready": not failed,
            "failed": failed,
            "checks": {name: asdict(check) for name, check in checks.items()},
        }
        return web.json_response(body, status=503 if failed else 200)

    async def metrics_endpoint(self, request: web.Request) -> web.Response:
        await self.metrics.refresh(self.service)
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    # --- readiness ---------------------------------------------------------------------------

    async def check(self) -> dict[str, Check]:
        """Run every readiness check concurrently, each bounded by `check_timeout`."""
        names = ["milvus", "llm"]
        results = await asyncio.gather(
            self._timed("Milvus", lambda: check_index(self.service.store)),
            self._timed("the LLM server", self._check_llm),
        )
        checks = dict(zip(names, results, strict=True))
        if self.core is not None and self.core.draining:
            checks["shutdown"] = Check(False, "shutting down: not taking new questions", 0.0)
        return checks

    async def _timed(self, what: str, probe: Callable[[], Awaitable[str]]) -> Check:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.check_timeout):
                detail = await probe()
            ok = True
        except TimeoutError:
            ok, detail = False, f"{what} did not answer within {self.check_timeout:g} s"
        except NotReady as exc:
            ok, detail = False, str(exc)
        except StoreError as exc:
            log.warning("readiness: %s: %s", what, exc)
            ok, detail = False, f"{what} is not reachable"
        except Exception:
            log.warning("readiness check of %s failed", what, exc_info=True)
            ok, detail = False, f"the {what} check failed; the log has the details"
        return Check(ok, detail, round(time.perf_counter() - started, 3))

    async def _check_llm(self) -> str:
        settings = self.service.settings
        if self.service.llm is None:
            return "answer generation off"
        assert self._http is not None, "start() first"
        base = str(getattr(self.service.llm, "base_url", settings.llm_base_url)).rstrip("/")
        headers = {"Authorization": f"Bearer {settings.llm_api_key.get_secret_value() or 'not-needed'}"}
        try:
            async with self._http.get(f"{base}/models", headers=headers) as response:
                if response.status != 200:
                    raise NotReady(f"LLM server at {base} answered {response.status}")
                await response.read()
        except aiohttp.ClientError as exc:
            log.info("readiness: the LLM server at %s: %r", base, exc)
            raise NotReady(f"LLM server at {base} is unreachable") from exc
        return f"LLM server at {base} is up"


async def check_index(store: ChunkStore) -> str:
    """Milvus answers, the collection exists, is loaded and holds chunks."""

    def probe() -> str:
        client = store.client
        if not client.has_collection(store.collection):
            raise NotReady(f"collection {store.collection} does not exist yet (run `docsbot index`)")
        state = str(client.get_load_state(store.collection).get("state", ""))
        if "Loaded" not in state:
            raise NotReady(f"collection {store.collection} is not loaded ({state or 'unknown state'})")
        chunks = store.count_chunks()
        if not chunks:
            raise NotReady(f"collection {store.collection} is empty (indexing?)")
        return f"collection {store.collection}: {chunks} chunks"

    return await asyncio.to_thread(probe)
