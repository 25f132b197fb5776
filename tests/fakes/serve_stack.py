"""`docsbot serve` as a real process in front of fake Slack, Discord and LLM servers.

The fakes run on this process's event loop on 127.0.0.1; the bot runs as `python -m bot serve`
with its settings pointing at them (Slack in Socket Mode, Discord through the fake gateway), so
everything between the bot and the network is the production code path.

    async with ServeStack(tmp_path) as stack:
        seconds = await stack.ask_slack("what does M control in HNSW?")
        seconds = await stack.ask_discord("what does M control in HNSW?")
        metrics = await stack.metrics()
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from .discord_api import FakeDiscord, snowflake, user
from .llm_server import FakeLLM
from .slack_api import BOT_USER_ID, TEAM_ID, FakeSlack

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DOCS = ROOT / "tests" / "fixtures" / "docs"
ANSWER = "HNSW's M sets the maximum number of edges per node in the graph [1]."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeStack:
    """Fakes + the serve process. `async with` starts both and waits until the bot is ready."""

    def __init__(self, root: Path, *, token_delay: float = 0.0, **env: str) -> None:
        self.root = root
        self.slack = FakeSlack()
        self.discord = FakeDiscord()
        self.llm = FakeLLM(answer=ANSWER, token_delay=token_delay)
        self.extra_env = env
        self.ops_url = ""
        self.process: asyncio.subprocess.Process | None = None
        self.log_path = root / "serve.log"
        self._ids = itertools.count(1)
        self._http: aiohttp.ClientSession | None = None
        self._slack_done = 0
        self._discord_done = 0
        self._lock = asyncio.Lock()
        self._discord_lock = asyncio.Lock()

    async def __aenter__(self) -> ServeStack:
        await self.slack.start()
        await self.discord.start()
        await self.llm.start()
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        ops_port = free_port()
        self.ops_url = f"http://127.0.0.1:{ops_port}"
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("MILVUS_", "SLACK_", "DISCORD_", "LLM_"))
            },
            "PYTHONPATH": str(ROOT),
            "MILVUS_URI": str(self.root / "milvus.db"),
            "DATA_DIR": str(self.root / "data"),
            "RECORDS_PATH": str(self.root / "records.sqlite3"),
            "DOCS_SOURCE": str(FIXTURE_DOCS),
            "COLLECTION": "stack_docs",
            "SLACK_BOT_TOKEN": "xoxb-stack-test",
            "SLACK_APP_TOKEN": "xapp-stack-test",
            "SLACK_MODE": "socket",
            "SLACK_API_URL": self.slack.api_url,
            "DISCORD_TOKEN": "discord-stack-test",
            "DISCORD_API_BASE_URL": self.discord.api_base,
            "DISCORD_GATEWAY_URL": self.discord.gateway_url,
            "DISCORD_GUILD_IDS": self.discord.guild_id,
            "LLM_BASE_URL": self.llm.base_url,
            "LLM_MODEL": "fake-model",
            "LLM_MAX_RETRIES": "0",
            "USER_RATE_LIMIT": "0",
            "STREAM_EDIT_INTERVAL": "0.5",
            "OPS_PORT": str(ops_port),
            "SHUTDOWN_GRACE": "5",
            "LOG_LEVEL": "INFO",
            **self.extra_env,
        }
        log = self.log_path.open("w")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "serve", cwd=self.root, env=env, stdout=log, stderr=log
        )
        log.close()
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            await self._close_fakes()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
        await self._close_fakes()

    async def stop(self, timeout: float = 30.0) -> int | None:  # noqa: ASYNC109
        """SIGTERM the bot and wait for it; its exit status."""
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()

    async def _close_fakes(self) -> None:
        if self._http is not None:
            await self._http.close()
        for fake in (self.llm, self.discord, self.slack):
            with contextlib.suppress(Exception):
                await fake.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    # --- readiness -----------------------------------------------------------------------------

    async def _wait_ready(self, within: float = 240.0) -> None:
        """Both adapters connected, /readyz 200 and the start-up index run finished."""
        deadline = time.monotonic() + within
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            if self.slack.connected and self.discord.identified:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    status, _ = await self.get("/readyz")
                    _, metrics = await self.get("/metrics")
                    if status == 200 and 'docsbot_reindex_runs_total{outcome="ok"} 1.0' in metrics:
                        return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"serve was not ready within {within:.0f} s:\n{self.log()[-4000:]}")

    async def get(self, path: str) -> tuple[int, str]:
        assert self._http is not None
        async with self._http.get(self.ops_url + path) as response:
            return response.status, await response.text()

    async def metrics(self) -> str:
        return (await self.get("/metrics"))[1]

    def rss_kib(self) -> int:
        """The bot process's resident memory (KiB), from /proc."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    # --- questions -----------------------------------------------------------------------------

    def _slack_finals(self) -> int:
        """Final answers: a stopped native stream, or (the edit path) an update with blocks."""
        edited = sum(1 for call in self.slack.calls_to("chat.update") if call.args.get("blocks"))
        return edited + len(self.slack.calls_to("chat.stopStream"))

    def _discord_finals(self) -> int:
        bot_id = self.discord.bot["id"]
        return sum(
            1 for m in self.discord.messages.values() if m["author"]["id"] == bot_id and m["components"]
        )

    async def ask_slack(self, question: str, within: float = 30.0) -> float:
        """Mention the bot in Slack (Socket Mode); seconds until the final answer is posted."""
        async with self._lock:  # one question at a time per adapter: finals are counted
            n = next(self._ids)
            ts = self.slack.new_ts()
            text = f"<@{BOT_USER_ID}> {question}"
            event = {
                "type": "app_mention",
                "user": f"U{n}",
                "text": text,
                "ts": ts,
                "channel": "C1",
                "event_ts": ts,
            }
            self.slack.add_message("C1", ts, f"U{n}", text)
            target = self._slack_done + 1
            started = time.perf_counter()
            await self.slack.send_envelope(
                {
                    "envelope_id": f"env-{n}",
                    "type": "events_api",
                    "accepts_response_payload": False,
                    "retry_attempt": 0,
                    "retry_reason": "",
                    "payload": {
                        "token": "legacy",
                        "team_id": TEAM_ID,
                        "api_app_id": "A1",
                        "type": "event_callback",
                        "event_id": f"Ev{n}",
                        "event_time": int(time.time()),
                        "event": event,
                        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
                    },
                }
            )
            await self.slack.wait_for(lambda: self._slack_finals() >= target, within)
            self._slack_done = target
            return time.perf_counter() - started

    async def ask_discord(self, question: str, within: float = 30.0) -> float:
        """Mention the bot in the Discord channel; seconds until the final answer is posted."""
        async with self._discord_lock:
            target = self._discord_done + 1
            started = time.perf_counter()
            await self.discord.send_message(question, author=user(snowflake(), f"member{next(self._ids)}"))
            await self.discord.wait_until(lambda: self._discord_finals() >= target, timeout=within)
            self._discord_done = target
            return time.perf_counter() - started

    def final_texts(self) -> dict[str, list[str]]:
        """The final answers each platform received."""
        slack = [
            str(call.args["blocks"][0].get("text", {}).get("text", ""))
            for call in self.slack.calls_to("chat.update")
            if call.args.get("blocks")
        ] + [
            str(self.slack.messages[(str(call.args["channel"]), str(call.args["ts"]))]["text"])
            for call in self.slack.calls_to("chat.stopStream")
        ]
        bot_id = self.discord.bot["id"]
        discord = [
            str(m["content"])
            for m in self.discord.messages.values()
            if m["author"]["id"] == bot_id and m["components"]
        ]
        return {"slack": slack, "discord": discord}


def sample(metrics: str, name: str) -> float:
    """One sample's value from a Prometheus exposition (0 when absent)."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def summarize(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {
        "n": len(ordered),
        "p50_ms": pick(0.5),
        "p95_ms": pick(0.95),
        "max_ms": round(ordered[-1] * 1000, 1),
    }
