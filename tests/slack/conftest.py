"""The Slack tests' harness: a real `SlackAdapter` (HTTP mode, signed requests) in front of the
fake Slack Web API and a fake LLM, over the real indexed service."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from pydantic import SecretStr

from bot.chat.flow import ChatCore
from bot.slack.adapter import SlackAdapter
from core.generation import OpenAIChatLLM
from core.records import Records
from core.service import RagService

from ..fakes.llm_server import FakeLLM
from ..fakes.slack_api import BOT_USER_ID, TEAM_ID, FakeSlack

SECRET = "test-signing-secret"
ADMIN = "UADMIN"
QUESTION = "what does M control in an HNSW index?"
ANSWER = (
    "The **M** parameter sets the maximum number of edges per node in the HNSW graph [1]. "
    "Higher values raise recall and memory use; see `efConstruction` too [1]."
)
MANIFEST = Path(__file__).parents[2] / "deploy" / "slack-manifest.yml"


def sign(body: bytes, timestamp: int, secret: str = SECRET) -> str:
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def event_body(event: dict[str, Any], event_id: str) -> dict[str, Any]:
    return {
        "token": "legacy",
        "team_id": TEAM_ID,
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "event": event,
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    }


@dataclass
class Bot:
    """A running SlackAdapter in front of a fake Slack and a fake LLM."""

    slack: FakeSlack
    llm: FakeLLM
    adapter: SlackAdapter
    core: ChatCore
    http: aiohttp.ClientSession
    _events: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.adapter.port}/slack/events"

    async def post(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: int | None = None,
        secret: str = SECRET,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        timestamp = int(time.time()) if timestamp is None else timestamp
        all_headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": sign(body, timestamp, secret),
        } | (headers or {})
        async with self.http.post(self.url, data=body, headers=all_headers) as response:
            return response.status, await response.text()

    async def event(
        self, event: dict[str, Any], event_id: str | None = None, headers: dict[str, str] | None = None
    ) -> int:
        self._events += 1
        body = json.dumps(event_body(event, event_id or f"Ev{self._events}")).encode()
        status, _ = await self.post(body, "application/json", headers=headers)
        return status

    def mention(
        self, text: str, *, user: str = "U1", channel: str = "C1", thread_ts: str = ""
    ) -> dict[str, Any]:
        ts = self.slack.new_ts()
        event = {
            "type": "app_mention",
            "user": user,
            "text": f"<@{BOT_USER_ID}> {text}",
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        self.slack.add_message(channel, ts, user, event["text"], thread_ts or None)
        return event

    async def command(
        self, command: str, text: str, *, user: str = "U1", channel: str = "C1"
    ) -> tuple[int, str]:
        form = {
            "token": "legacy",
            "team_id": TEAM_ID,
            "channel_id": channel,
            "user_id": user,
            "command": command,
            "text": text,
            "response_url": self.slack.response_url(f"{command.strip('/')}-{user}"),
            "trigger_id": "trigger",
            "api_app_id": "A1",
        }
        return await self.post(urlencode(form).encode(), "application/x-www-form-urlencoded")

    async def click(self, action_id: str, value: str, *, user: str = "U2", ts: str = "1.0") -> int:
        payload = {
            "type": "block_actions",
            "user": {"id": user},
            "team": {"id": TEAM_ID},
            "api_app_id": "A1",
            "channel": {"id": "C1"},
            "container": {"type": "message", "message_ts": ts, "channel_id": "C1"},
            "response_url": self.slack.response_url(f"click-{user}"),
            "trigger_id": "trigger",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "feedback",
                    "value": value,
                    "action_ts": "1",
                }
            ],
        }
        status, _ = await self.post(
            urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
        )
        return status

    def final_updates(self) -> list[dict[str, Any]]:
        return [call.args for call in self.slack.calls_to("chat.update") if call.args.get("blocks")]

    async def answered(self, count: int = 1, within: float = 15.0) -> list[dict[str, Any]]:
        """Wait until `count` answers have their final blocks; returns the final updates."""
        await self.slack.wait_for(lambda: len(self.final_updates()) >= count, within)
        return self.final_updates()


Start = Callable[..., Awaitable[Bot]]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def start(indexed_service: RagService, tmp_path: Path) -> AsyncIterator[Start]:
    """Start the adapter (HTTP mode unless told otherwise) with settings overrides (the
    edit path unless `slack_streaming="native"`)."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(*, llm_url: str = "", wait: bool = True, **overrides: Any) -> Bot:
            slack = await FakeSlack().start()
            stack.push_async_callback(slack.stop)
            fake_llm = await FakeLLM(answer=ANSWER).start()
            stack.push_async_callback(fake_llm.stop)
            settings = indexed_service.settings.model_copy(
                update={
                    "slack_bot_token": SecretStr("xoxb-test"),
                    "slack_app_token": SecretStr("xapp-test"),
                    "slack_signing_secret": SecretStr(SECRET),
                    "slack_mode": "http",
                    "slack_api_url": slack.api_url,
                    "slack_http_port": 0,
                    "slack_admin_user_ids": ADMIN,
                    "stream_edit_interval": 0.2,
                    "slack_streaming": "edits",  # this file tests the edit path; see test_streaming.py
                    "user_rate_limit": 0,
                    "records_path": tmp_path / "records.sqlite3",
                    "data_dir": tmp_path / "data",
                }
                | overrides
            )
            llm = OpenAIChatLLM(
                llm_url or fake_llm.base_url, "fake-model", timeout=10.0, max_retries=0, concurrency=8
            )
            stack.push_async_callback(llm.close)
            service = RagService(settings, indexed_service.store, indexed_service.embedder, llm)
            records = Records(settings.records_path)
            stack.callback(records.close)
            core = ChatCore(settings, service, records)
            adapter = SlackAdapter(core)
            http = await stack.enter_async_context(aiohttp.ClientSession())
            task = asyncio.create_task(adapter.run())

            async def stop() -> None:
                if task.done():
                    return  # it failed at start: the test saw why
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

            stack.push_async_callback(stop)
            if wait:
                ready = asyncio.create_task(adapter.ready.wait())
                await asyncio.wait({ready, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
                if task.done():
                    task.result()  # raise what stopped it
                assert adapter.ready.is_set(), "the adapter did not start"
            return Bot(slack, fake_llm, adapter, core, http)

        yield start
