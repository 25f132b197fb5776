"""A fake Slack on 127.0.0.1: the Web API methods the bot calls, response URLs, and a Socket
Mode websocket server. Every call is recorded, messages are kept (so `conversations.replies`
returns what the bot posted), and faults are injected per method (429 with Retry-After).

    slack = await FakeSlack().start()
    settings = ... slack_api_url=slack.api_url ...
    slack.calls_to("chat.update")      # [Call(method, args, at), ...]
    await slack.send_envelope({...})    # Socket Mode: deliver an envelope to the connected app

Native streaming (`chat.startStream` / `appendStream` / `stopStream`) keeps a message in a
"streaming" state: appends and the stop are refused once it stopped, a stream outside a DM needs
`recipient_user_id` and `recipient_team_id`, and `streaming_error` makes `startStream` fail the
way an old workspace or an Enterprise policy does (e.g. "unknown_method"), per team when
`streaming_refused_teams` is set. `assistant.threads.setStatus` statuses are kept per thread,
`views.open` views are kept, and `conversations.info` tells public (C...), private (G... or any
id in `private_channels`) and DM (D...) channels apart.

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
    streaming_error: str = ""  # chat.startStream / assistant.threads.setStatus fail with it
    streaming_refused_teams: set[str] = field(default_factory=set)  # ... only for these teams
    statuses: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (channel, thread) -> set
    views: list[dict[str, Any]] = field(default_factory=list)  # views.open
    private_channels: set[str] = field(default_factory=set)
    expired_triggers: set[str] = field(default_factory=set)
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

    # --- native streaming and the assistant status ----------------------------------------------

    def _refuses_streaming(self, args: dict[str, Any]) -> bool:
        if not self.streaming_error:
            return False
        team = str(args.get("recipient_team_id", ""))
        return not self.streaming_refused_teams or team in self.streaming_refused_teams

    def _assistant_threads_setStatus(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        if self._refuses_streaming(args) and not self.streaming_refused_teams:
            return {"ok": False, "error": self.streaming_error}
        for name in ("channel_id", "thread_ts", "status"):
            if name not in args:
                return {"ok": False, "error": "invalid_arguments", "missing": name}
        key = (str(args["channel_id"]), str(args["thread_ts"]))
        self.statuses.setdefault(key, []).append(str(args["status"]))
        return {"ok": True}

    def _chat_startStream(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        if self._refuses_streaming(args):
            return {"ok": False, "error": self.streaming_error}
        channel = str(args.get("channel", ""))
        if not channel or not args.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        if channel in self.not_in_channel:
            return {"ok": False, "error": "not_in_channel"}
        if not channel.startswith("D"):  # channels need to know who the stream is for
            if not args.get("recipient_team_id"):
                return {"ok": False, "error": "missing_recipient_team_id"}
            if not args.get("recipient_user_id"):
                return {"ok": False, "error": "missing_recipient_user_id"}
        ts = self.new_ts()
        message = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "ts": ts,
            "thread_ts": str(args["thread_ts"]),
            "text": _stream_text(args),
            "streaming": True,
        }
        self.messages[(channel, ts)] = message
        self.statuses.pop((channel, str(args["thread_ts"])), None)  # a reply clears the status
        return {"ok": True, "channel": channel, "ts": ts}

    def _streaming_message(self, args: dict[str, Any]) -> dict[str, Any] | str:
        key = (str(args.get("channel", "")), str(args.get("ts", "")))
        if key not in self.messages:
            return "message_not_found"
        message = self.messages[key]
        if not message.get("streaming"):
            return "message_not_in_streaming_state"
        return message

    def _chat_appendStream(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        message = self._streaming_message(args)
        if isinstance(message, str):
            return {"ok": False, "error": message}
        text = _stream_text(args)
        if not text:
            return {"ok": False, "error": "invalid_arguments"}
        message["text"] += text
        return {"ok": True, "channel": args["channel"], "ts": message["ts"]}

    def _chat_stopStream(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        message = self._streaming_message(args)
        if isinstance(message, str):
            return {"ok": False, "error": message}
        message["text"] += _stream_text(args)
        message["streaming"] = False
        if args.get("blocks"):
            blocks = args["blocks"]
            message["blocks"] = json.loads(blocks) if isinstance(blocks, str) else blocks
        return {"ok": True, "channel": args["channel"], "ts": message["ts"], "message": message}

    def _views_open(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        trigger = str(args.get("trigger_id", ""))
        if not trigger or trigger in self.expired_triggers:
            return {"ok": False, "error": "expired_trigger_id"}
        view = args.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        if not isinstance(view, dict) or view.get("type") != "modal":
            return {"ok": False, "error": "invalid_arguments"}
        self.views.append(view)
        return {"ok": True, "view": {"id": f"V{len(self.views)}", **view}}

    def _conversations_info(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        is_im = channel.startswith("D")
        private = channel.startswith("G") or channel in self.private_channels
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "is_channel": not is_im and not private,
                "is_group": private,
                "is_im": is_im,
                "is_mpim": False,
                "is_private": private or is_im,
            },
        }

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
        # like Slack: oldest first, `limit` a page (default 1000), `next_cursor` while more are left
        start = int(str(args.get("cursor") or "0"))
        end = start + int(args.get("limit") or 1000)
        more = end < len(thread_messages)
        return {
            "ok": True,
            "messages": thread_messages[start:end],
            "has_more": more,
            "response_metadata": {"next_cursor": str(end) if more else ""},
        }

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


def _stream_text(args: dict[str, Any]) -> str:
    """The text a stream call carries: `markdown_text`, or its markdown_text chunks."""
    text = str(args.get("markdown_text") or "")
    chunks = args.get("chunks") or []
    if isinstance(chunks, str):
        chunks = json.loads(chunks)
    for chunk in chunks:
        if chunk.get("type") == "markdown_text":
            text += str(chunk.get("text", ""))
    return text
