"""A fake Slack on 127.0.0.1: the Web API methods the bot calls, response URLs, and a Socket
Mode websocket server. Every call is recorded, messages are kept (so `conversations.replies`
returns what the bot posted), and faults are injected per method (429 with Retry-After).

    slack = await FakeSlack().start()
    settings = ... slack_api_url=slack.api_url ...
    slack.calls_to("chat.update")      # [Call(method, args, at), ...]
    await slack.send_envelope({...})    # Socket Mode: deliver an envelope to the connected app

Modelled on bolt-python's tests/mock_web_api_server (canned `auth.test`, recorded requests),
but speaking aiohttp on a free port so the real `AsyncWebClient` and `AsyncApp` talk to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .loopback import serve_on_loopback

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T1"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float  # time.perf_counter() when it arrived
    token: str


@dataclass
class FakeSlack:
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (channel, ts)
    responses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # response_url posts
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # users.info answers
    not_in_channel: set[str] = field(default_factory=set)
    faults: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    latency: float = 0.0  # seconds every Web API call takes
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)  # Socket Mode envelope_id -> ack
    base_url: str = ""
    _runner: web.AppRunner | None = None
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _last_ts: float = 0.0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/respond/{id}", self._respond)
        app.router.add_get("/link", self._websocket)
        self._runner, port = await serve_on_loopback(app)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def response_url(self, name: str = "1") -> str:
        return f"{self.base_url}/respond/{name}"

    # --- inspection ---------------------------------------------------------------------------

    def new_ts(self) -> str:
        """A message timestamp like Slack's ("1700000000.123456"), strictly increasing."""
        self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{self._last_ts:.6f}"

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def add_message(self, channel: str, ts: str, user: str, text: str, thread_ts: str | None = None) -> None:
        """A message people wrote (so `conversations.replies` returns it)."""
        message = {"type": "message", "user": user, "text": text, "ts": ts}
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.messages[(channel, ts)] = message

    async def wait_for(self, predicate: Any, within: float = 10.0) -> None:
        """Wait until `predicate()` is true (checked after every call the fake receives)."""
        deadline = time.monotonic() + within
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"fake Slack: condition not met in {within} s; calls: {self.summary()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))

    def summary(self) -> list[str]:
        return [call.method for call in self.calls]

    # --- Web API ------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(dict(await request.post()))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.calls.append(Call(method, args, time.perf_counter(), token))
        self._changed.set()
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.faults.get(method):
            status, headers = self.faults[method].pop(0)
            return web.json_response({"ok": False, "error": "ratelimited"}, status=status, headers=headers)
        if not token:
            return web.json_response({"ok": False, "error": "not_authed"})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(handler(args, token))

    def _auth_test(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        if not token.startswith("xoxb-"):
            return {"ok": False, "error": "invalid_auth"}
        return {
            "ok": True,
            "url": "https://fake.slack.test/",
            "team": "Fake Team",
            "user": "docsbot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        if not token.startswith("xapp-"):
            return {"ok": False, "error": "not_allowed_token_type"}
        return {"ok": True, "url": self.base_url.replace("http://", "ws://") + "/link"}

    def _chat_postMessage(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if channel in self.not_in_channel:
            return {"ok": False, "error": "not_in_channel"}
        ts = self.new_ts()
        message = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "ts": ts,
            "text": args.get("text", ""),
        }
        if args.get("blocks"):
            message["blocks"] = args["blocks"]
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_update(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        key = (str(args.get("channel", "")), str(args.get("ts", "")))
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        message = self.messages[key]
        message["text"] = args.get("text", "")
        if "blocks" in args:
            message["blocks"] = args["blocks"]
        return {"ok": True, "channel": key[0], "ts": key[1], "text": message["text"]}

    def _chat_postEphemeral(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        return {"ok": True, "message_ts": self.new_ts()}

    def _conversations_replies(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        channel, thread = str(args.get("channel", "")), str(args.get("ts", ""))
        thread_messages = [
            message
            for (ch, ts), message in self.messages.items()
            if ch == channel and (ts == thread or message.get("thread_ts") == thread)
        ]
        thread_messages.sort(key=lambda m: float(m["ts"]))
        return {"ok": True, "messages": thread_messages, "has_more": False}

    def _users_info(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        user = str(args.get("user", ""))
        return {"ok": True, "user": self.users.get(user, {"id": user, "is_admin": False, "is_owner": False})}

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append((request.match_info["id"], await request.json()))
        self._changed.set()
        return web.Response(text="ok")

    # --- Socket Mode --------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self._changed.set()
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}})
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    data = json.loads(message.data)
                    if "envelope_id" in data:
                        self.acks[data["envelope_id"]] = data
                        self._changed.set()
        finally:
            self._sockets.remove(ws)
        return ws

    @property
    def connected(self) -> bool:
        return bool(self._sockets)

    async def send_envelope(self, envelope: dict[str, Any]) -> None:
        await self._sockets[-1].send_json(envelope)
