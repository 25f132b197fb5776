"""A faithful fake of Discord's REST API and gateway, for driving the real discord.py client.

One aiohttp server on 127.0.0.1 plays both parts:

- the gateway (`/gateway`, a websocket): HELLO, IDENTIFY -> READY + GUILD_CREATE for one
  server with one text channel (plus the channels, forums and roles a test adds) and the bot's
  managed role (`bot_role_id`, as Discord makes for a bot invited with permissions), heartbeat
  ACKs, RESUME -> RESUMED; tests push MESSAGE_CREATE, THREAD_CREATE and INTERACTION_CREATE
  through it (`send_message`, `forum_post`, `command`, `click`, `submit_modal`);
- the REST API (`/api/v10/...`): login, application info, command sync, members (read),
  channels (read, edit a thread's tags), messages (create, edit, read, list), typing, threads
  started from a message, interaction callbacks (messages, deferrals, message updates,
  modals), the interaction webhook (original response and followups). Every call is recorded
  with its JSON body and the time.

Forums work like Discord's: a post is a thread (type 11) in a forum channel (type 15) whose
starter message has the thread's id; `applied_tags` must name tags the forum offers. Members
carry their role ids on MESSAGE_CREATE and interactions (`roles=`). The bot's messages keep the
`allowed_mentions` and `flags` they were sent with (SUPPRESS_EMBEDS = 1 << 2), for the tests.

Knobs: `expired` (interaction ids whose callback answers 10062 Unknown interaction, as Discord
does after 3 s), `fail` (regexes of `METHOD /path` that answer 400, to provoke errors) and
`forbid` (regexes answered 403 50013 Missing Permissions, as for a permission the bot lacks).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from .loopback import serve_on_loopback

MANAGE_GUILD = 1 << 5
#: Message flag: no link previews (Discord drops every embed of a message with it).
SUPPRESS_EMBEDS = 1 << 2
#: Channel types.
TEXT, PUBLIC_THREAD, FORUM = 0, 11, 15
#: Permissions of a plain member: view channel, send messages, read history, use commands.
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 31)

_ids = itertools.count(1)


def snowflake() -> str:
    """A fresh id, increasing like Discord's (the timestamp part is "now")."""
    millis = int(time.time() * 1000) - 1420070400000
    return str((millis << 22) + next(_ids) % (1 << 22))


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Call:
    """One REST request the client made."""

    method: str
    path: str  # without the /api/v10 prefix: /channels/1/messages
    body: Any
    query: dict[str, str]
    at: float  # time.monotonic()


def user(user_id: str, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "flags": 0,
        "public_flags": 0,
    }


@dataclass
class FakeDiscord:
    guild_id: str = field(default_factory=snowflake)
    channel_id: str = field(default_factory=snowflake)
    app_id: str = field(default_factory=snowflake)
    admin_role_id: str = field(default_factory=snowflake)
    bot_role_id: str = field(default_factory=snowflake)
    bot: dict[str, Any] = field(default_factory=lambda: user(snowflake(), "docsbot", bot=True))
    calls: list[Call] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)  # extra guild roles by id
    members: dict[str, dict[str, Any]] = field(default_factory=dict)  # user id -> member (with user)
    modals: dict[str, dict[str, Any]] = field(default_factory=dict)  # interaction id -> modal shown
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> registered command
    identify: dict[str, Any] | None = None
    expired: set[str] = field(default_factory=set)
    fail: list[str] = field(default_factory=list)
    forbid: list[str] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _ws: web.WebSocketResponse | None = None
    _seq: int = 0
    identified: int = 0  # IDENTIFYs answered with READY + GUILD_CREATE (one per client start)
    _originals: dict[str, str] = field(default_factory=dict)  # interaction token -> message id
    _interactions: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> payload

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> FakeDiscord:
        self.add_channel("general", self.channel_id)
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner, self.port = await serve_on_loopback(app, shutdown_timeout=0.2)
        return self

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def connected(self, after: int = 0, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until a client has identified (more than `after` times in all) and been sent
        READY and GUILD_CREATE."""
        await self.wait_until(lambda: self.identified > after, timeout)

    def add_channel(self, name: str, channel_id: str = "") -> str:
        """A text channel in the server (add them before the client connects). Returns its id."""
        channel_id = channel_id or snowflake()
        self.channels[channel_id] = {
            "id": channel_id,
            "type": 0,
            "guild_id": self.guild_id,
            "name": name,
            "position": len(self.channels),
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
        }
        return channel_id

    def add_forum(self, name: str, tags: list[str] | None = None) -> str:
        """A forum channel offering these tags (add it before the client connects). Returns its id."""
        forum_id = self.add_channel(name)
        self.channels[forum_id] |= {
            "type": FORUM,
            "topic": None,
            "flags": 0,
            "available_tags": [
                {"id": snowflake(), "name": tag, "moderated": False, "emoji_id": None, "emoji_name": None}
                for tag in tags or []
            ],
            "default_reaction_emoji": None,
            "default_sort_order": None,
            "default_forum_layout": 0,
            "default_thread_rate_limit_per_user": 0,
        }
        return forum_id

    def tag_id(self, forum_id: str, name: str) -> str:
        """The id of a forum's tag, by name."""
        (tag,) = [t for t in self.channels[forum_id]["available_tags"] if t["name"] == name]
        return str(tag["id"])

    def add_role(self, name: str) -> str:
        """A role in the server (add it before the client connects). Returns its id."""
        role_id = snowflake()
        self.roles[role_id] = {"id": role_id, "name": name, "position": 2 + len(self.roles)}
        return role_id

    # --- what the tests send ---------------------------------------------------------------

    def message(
        self,
        content: str,
        *,
        author: dict[str, Any],
        channel_id: str | None = None,
        reply_to: dict[str, Any] | None = None,
        mentions: list[dict[str, Any]] | None = None,
        role_mentions: list[str] | None = None,
        dm: bool = False,
        roles: list[str] | None = None,
    ) -> dict[str, Any]:
        """A message payload as Discord sends it (stored, so it can be fetched later); a
        member's `roles` ride along as Discord sends them (`member.roles`), and the ids of the
        roles the text mentions (`<@&id>`) as `mention_roles`."""
        channel_id = channel_id or self.channel_id
        data: dict[str, Any] = {
            "id": snowflake(),
            "channel_id": channel_id,
            "author": author,
            "content": content,
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": mentions or [],
            "mention_roles": list(role_mentions or []),
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": 19 if reply_to else 0,
            "flags": 0,
        }
        if not dm:
            data["guild_id"] = self.guild_id
            if not author.get("bot"):
                data["member"] = _member(roles)
                self.members[author["id"]] = data["member"] | {"user": author}
        if reply_to is not None:
            data["message_reference"] = {
                "message_id": reply_to["id"],
                "channel_id": reply_to["channel_id"],
                "guild_id": self.guild_id,
            }
            data["referenced_message"] = reply_to
        self.messages[data["id"]] = data
        return data

    async def send_message(
        self, content: str, *, author: dict[str, Any], mention: bool = True, **options: Any
    ) -> dict[str, Any]:
        """A user posts a message (`<@bot> content` when `mention`); dispatched as MESSAGE_CREATE."""
        text = f"<@{self.bot['id']}> {content}" if mention else content
        data = self.message(text, author=author, mentions=[self.bot] if mention else [], **options)
        await self.dispatch("MESSAGE_CREATE", data)
        return data

    async def forum_post(
        self,
        forum_id: str,
        title: str,
        content: str,
        *,
        author: dict[str, Any],
        roles: list[str] | None = None,
        tags: list[str] | None = None,
        starter_first: bool = False,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A user opens a post in a forum: THREAD_CREATE for the post's thread, then
        MESSAGE_CREATE for its starter message (same id as the thread); the other way round
        with `starter_first` (the gateway does not promise the order). Returns both."""
        thread_id = snowflake()
        thread = self._thread(thread_id, forum_id, title, owner_id=author["id"])
        thread["applied_tags"] = [self.tag_id(forum_id, name) for name in tags or []]
        self.channels[thread_id] = thread
        starter = self.message(content, author=author, channel_id=thread_id, roles=roles)
        del self.messages[starter["id"]]
        starter["id"] = thread_id  # a forum post's starter message shares the thread's id
        self.messages[thread_id] = starter
        events = [("THREAD_CREATE", thread | {"newly_created": True}), ("MESSAGE_CREATE", starter)]
        for event, data in reversed(events) if starter_first else events:
            await self.dispatch(event, data)
        return thread, starter

    async def command(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        author: dict[str, Any],
        permissions: int = MEMBER_PERMISSIONS,
        roles: list[str] | None = None,
        dm: bool = False,
        interaction_id: str = "",
    ) -> dict[str, Any]:
        """A user runs a slash command; dispatched as INTERACTION_CREATE. Returns the payload."""
        registered = self.commands[name]
        values = options or {}
        typed = []
        for option in registered.get("options", []):
            if option["name"] in values:
                typed.append(
                    {"name": option["name"], "type": option["type"], "value": values[option["name"]]}
                )
        data: dict[str, Any] = {
            "id": registered["id"],
            "name": name,
            "type": 1,
            "options": typed,
        }
        if registered.get("guild_id"):
            data["guild_id"] = registered["guild_id"]
        return await self._interaction(
            2, data, author=author, permissions=permissions, roles=roles, dm=dm, interaction_id=interaction_id
        )

    async def click(
        self,
        custom_id: str,
        message: dict[str, Any],
        *,
        author: dict[str, Any],
        roles: list[str] | None = None,
    ) -> dict[str, Any]:
        """A user clicks a button of `message` (in the message's channel); dispatched as
        INTERACTION_CREATE."""
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interaction(
            3, data, author=author, message=message, roles=roles, channel_id=message["channel_id"]
        )

    async def submit_modal(
        self, shown_by: str, values: dict[str, str | list[str]], *, author: dict[str, Any]
    ) -> dict[str, Any]:
        """A user submits the modal the bot showed in answer to interaction `shown_by`, with
        these values by component custom_id (a string for a text input, a list for a select);
        dispatched as INTERACTION_CREATE type 5, with the components shaped as Discord sends them."""
        modal = self.modals[shown_by]
        origin = self._interactions[shown_by]

        def submitted(component: dict[str, Any]) -> dict[str, Any] | None:
            kind = component["type"]
            if kind == 1:  # action row (text inputs, the older layout)
                inner = [c for c in map(submitted, component["components"]) if c is not None]
                return {"type": 1, "components": inner}
            if kind == 18:  # label around one component
                inner_one = submitted(component["component"])
                return (
                    None
                    if inner_one is None
                    else {"type": 18, "id": component.get("id", 0), "component": inner_one}
                )
            if kind == 4:  # text input
                return {
                    "type": 4,
                    "custom_id": component["custom_id"],
                    "value": values.get(component["custom_id"], ""),
                }
            if kind == 3:  # string select
                chosen = values.get(component["custom_id"], [])
                return {"type": 3, "custom_id": component["custom_id"], "values": list(chosen)}
            return None

        components = [c for c in map(submitted, modal["components"]) if c is not None]
        data = {"custom_id": modal["custom_id"], "components": components}
        return await self._interaction(
            5,
            data,
            author=author,
            message=origin.get("message"),
            roles=origin.get("member", {}).get("roles"),
            channel_id=origin.get("channel_id", self.channel_id),
        )

    async def _interaction(
        self,
        kind: int,
        data: dict[str, Any],
        *,
        author: dict[str, Any],
        permissions: int = MEMBER_PERMISSIONS,
        roles: list[str] | None = None,
        dm: bool = False,
        message: dict[str, Any] | None = None,
        interaction_id: str = "",
        channel_id: str = "",
    ) -> dict[str, Any]:
        channel_id = channel_id or self.channel_id
        payload: dict[str, Any] = {
            "id": interaction_id or snowflake(),
            "application_id": self.app_id,
            "type": kind,
            "data": data,
            "token": f"token-{snowflake()}",
            "version": 1,
            "locale": "en-US",
            "app_permissions": str(MEMBER_PERMISSIONS | (1 << 14)),
            "entitlements": [],
            "attachment_size_limit": 8 * 1024 * 1024,
        }
        if dm:
            dm_channel = {"id": snowflake(), "type": 1, "recipients": [author]}
            payload.update(channel_id=dm_channel["id"], channel=dm_channel, user=author, context=1)
            payload["authorizing_integration_owners"] = {"0": self.guild_id}
        else:
            payload.update(
                guild_id=self.guild_id,
                channel_id=channel_id,
                channel=self.channels[channel_id],
                guild_locale="en-US",
                context=0,
                member=_member(roles) | {"user": author, "permissions": str(permissions)},
            )
            payload["authorizing_integration_owners"] = {"0": self.guild_id}
        if message is not None:
            payload["message"] = message
        self._interactions[payload["id"]] = payload
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send one DISPATCH (op 0) to the connected client."""
        if self._ws is None:
            raise RuntimeError("no client connected")
        self._seq += 1
        await self._ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    # --- what the tests read ---------------------------------------------------------------

    def rest(self, method: str, pattern: str) -> list[Call]:
        """Recorded calls with this method whose path matches the regex (fully)."""
        return [c for c in self.calls if c.method == method and re.fullmatch(pattern, c.path)]

    def bot_messages(self, channel_id: str | None = None) -> list[dict[str, Any]]:
        """Messages the bot created in a channel, oldest first (with their latest edits)."""
        channel_id = channel_id or self.channel_id
        return [
            m
            for m in self.messages.values()
            if m["author"]["id"] == self.bot["id"] and m["channel_id"] == channel_id
        ]

    async def wait_until(self, predicate: Any, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Poll `predicate()` until it is true (AssertionError after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {getattr(predicate, '__name__', predicate)}")
            await asyncio.sleep(0.02)

    # --- gateway -----------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op = frame.get("op")
            if op == 1:  # heartbeat
                await ws.send_str(json.dumps({"op": 11}))
            elif op == 2:  # identify
                self.identify = frame["d"]
                await self.dispatch("READY", self._ready())
                await self.dispatch("GUILD_CREATE", self._guild())
                self.identified += 1
            elif op == 6:  # resume
                await self.dispatch("RESUMED", {})
        if self._ws is ws:
            self._ws = None
        return ws

    def _ready(self) -> dict[str, Any]:
        return {
            "v": 10,
            "user": self.bot | {"verified": True, "mfa_enabled": False},
            "guilds": [{"id": self.guild_id, "unavailable": True}],
            "session_id": "fake-session",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": self.app_id, "flags": 0},
            "private_channels": [],
        }

    def _guild(self) -> dict[str, Any]:
        everyone = {
            "id": self.guild_id,
            "name": "@everyone",
            "permissions": str(MEMBER_PERMISSIONS),
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        admins = everyone | {"id": self.admin_role_id, "name": "docs admins", "position": 1}
        bot_role = everyone | {
            "id": self.bot_role_id,
            "name": self.bot["username"],
            "position": 1,
            "managed": True,
            "tags": {"bot_id": self.bot["id"]},
        }
        return {
            "id": self.guild_id,
            "name": "Milvus community",
            "icon": None,
            "owner_id": snowflake(),
            "roles": [everyone, admins, bot_role, *(everyone | role for role in self.roles.values())],
            "channels": [c for c in self.channels.values() if c["type"] in (TEXT, 5, FORUM)],
            "threads": [c for c in self.channels.values() if c["type"] in (10, 11, 12)],
            "members": [
                {
                    "user": self.bot,
                    "roles": [self.bot_role_id],
                    "joined_at": _now(),
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                }
            ],
            "member_count": 2,
            "features": [],
            "emojis": [],
            "stickers": [],
            "large": False,
            "unavailable": False,
            "joined_at": _now(),
            "verification_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
        }

    # --- REST ----------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw and request.content_type == "application/json" else raw.decode()
        self.calls.append(Call(request.method, path, body, dict(request.query), time.monotonic()))
        if any(re.fullmatch(rule, f"{request.method} {path}") for rule in self.fail):
            return _error(400, 50035, "Invalid Form Body")
        if any(re.fullmatch(rule, f"{request.method} {path}") for rule in self.forbid):
            return _error(403, 50013, "Missing Permissions")
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and request.method == method:
                return await handler(request, body, *match.groups())
        return _error(404, 0, f"no fake route for {request.method} {path}")

    def _routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", r"/users/@me", self._me),
            ("GET", r"/oauth2/applications/@me", self._application),
            ("PUT", r"/applications/\d+/commands", self._sync),
            ("PUT", r"/applications/\d+/guilds/(\d+)/commands", self._sync),
            ("GET", r"/guilds/\d+/members/(\d+)", self._get_member),
            ("GET", r"/channels/(\d+)", self._get_channel),
            ("PATCH", r"/channels/(\d+)", self._edit_channel),
            ("POST", r"/channels/(\d+)/typing", self._typing),
            ("POST", r"/channels/(\d+)/messages", self._create_message),
            ("GET", r"/channels/(\d+)/messages", self._list_messages),
            ("GET", r"/channels/(\d+)/messages/(\d+)", self._get_message),
            ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._edit_message),
            ("POST", r"/channels/(\d+)/messages/(\d+)/threads", self._create_thread),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._callback),
            ("GET", r"/webhooks/\d+/([^/]+)/messages/@original", self._get_original),
            ("PATCH", r"/webhooks/\d+/([^/]+)/messages/@original", self._edit_original),
            ("POST", r"/webhooks/\d+/([^/]+)", self._followup),
        ]

    async def _me(self, request: web.Request, body: Any) -> web.Response:
        return _json(self.bot | {"verified": True, "mfa_enabled": False})

    async def _application(self, request: web.Request, body: Any) -> web.Response:
        return _json(
            {
                "id": self.app_id,
                "name": "docsbot",
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": user(snowflake(), "owner"),
                "verify_key": "fake",
                "flags": 0,
                "team": None,
                "summary": "",
            }
        )

    async def _sync(self, request: web.Request, body: Any, guild_id: str | None = None) -> web.Response:
        registered = []
        for command in body:
            command = command | {"id": snowflake(), "application_id": self.app_id, "version": "1"}
            if guild_id:
                command["guild_id"] = guild_id
            self.commands[command["name"]] = command
            registered.append(command)
        return _json(registered)

    async def _typing(self, request: web.Request, body: Any, channel_id: str) -> web.Response:
        return web.Response(status=204)

    def _bot_message(self, channel_id: str, body: dict[str, Any], *, flags: int = 0) -> dict[str, Any]:
        data = self.message(body.get("content") or "", author=self.bot, channel_id=channel_id)
        data["embeds"] = body.get("embeds") or []
        data["components"] = body.get("components") or []
        data["flags"] = flags | body.get("flags", 0)
        if data["flags"] & SUPPRESS_EMBEDS:  # Discord shows (and keeps) no embed at all then
            data["embeds"] = []
        data["allowed_mentions"] = body.get("allowed_mentions")  # kept for the tests to read
        reference = body.get("message_reference")
        if reference:
            data["type"] = 19
            data["message_reference"] = {
                "message_id": str(reference["message_id"]),
                "channel_id": str(reference.get("channel_id", channel_id)),
            }
            parent = self.messages.get(str(reference["message_id"]))
            data["referenced_message"] = (
                {k: v for k, v in parent.items() if k != "referenced_message"} if parent else None
            )
        if "guild_id" not in self.channels.get(channel_id, {}):  # a DM
            data.pop("guild_id", None)
        return data

    async def _create_message(self, request: web.Request, body: Any, channel_id: str) -> web.Response:
        return _json(self._bot_message(channel_id, body))

    async def _list_messages(self, request: web.Request, body: Any, channel_id: str) -> web.Response:
        before = int(request.query.get("before", 1 << 63))
        limit = int(request.query.get("limit", 50))
        found = [m for m in self.messages.values() if m["channel_id"] == channel_id and int(m["id"]) < before]
        found.sort(key=lambda m: int(m["id"]), reverse=True)
        return _json(found[:limit])

    async def _get_message(
        self, request: web.Request, body: Any, channel_id: str, message_id: str
    ) -> web.Response:
        found = self.messages.get(message_id)
        if found is None or found["channel_id"] != channel_id:
            return _error(404, 10008, "Unknown Message")
        return _json(found)

    async def _edit_message(
        self, request: web.Request, body: Any, channel_id: str, message_id: str
    ) -> web.Response:
        found = self.messages.get(message_id)
        if found is None:
            return _error(404, 10008, "Unknown Message")
        _apply_edit(found, body)
        return _json(found)

    async def _create_thread(
        self, request: web.Request, body: Any, channel_id: str, message_id: str
    ) -> web.Response:
        # like Discord: a thread started from a message shares the message's id
        thread = self._thread(
            message_id,
            channel_id,
            body["name"],
            owner_id=self.bot["id"],
            auto_archive_duration=body.get("auto_archive_duration", 1440),
        )
        self.channels[message_id] = thread
        await self.dispatch("THREAD_CREATE", thread | {"newly_created": True})
        return _json(thread)

    def _thread(
        self, thread_id: str, parent_id: str, name: str, *, owner_id: str, auto_archive_duration: int = 1440
    ) -> dict[str, Any]:
        """A public thread's channel payload."""
        return {
            "id": thread_id,
            "type": PUBLIC_THREAD,
            "guild_id": self.guild_id,
            "parent_id": parent_id,
            "owner_id": owner_id,
            "name": name,
            "message_count": 0,
            "member_count": 1,
            "rate_limit_per_user": 0,
            "flags": 0,
            "applied_tags": [],
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": auto_archive_duration,
                "archive_timestamp": _now(),
                "locked": False,
            },
        }

    async def _get_member(self, request: web.Request, body: Any, user_id: str) -> web.Response:
        """A member of the server (one who has written a message), with their current roles."""
        found = self.members.get(user_id)
        return _json(found) if found is not None else _error(404, 10007, "Unknown Member")

    async def _get_channel(self, request: web.Request, body: Any, channel_id: str) -> web.Response:
        found = self.channels.get(channel_id)
        return _json(found) if found is not None else _error(404, 10003, "Unknown Channel")

    async def _edit_channel(self, request: web.Request, body: Any, channel_id: str) -> web.Response:
        """Edit a thread: name, archived/locked, and a forum post's tags (which must be tags
        its forum offers, as Discord checks); dispatches THREAD_UPDATE."""
        found = self.channels.get(channel_id)
        if found is None:
            return _error(404, 10003, "Unknown Channel")
        if "applied_tags" in body:
            parent = self.channels.get(str(found.get("parent_id")), {})
            offered = {str(tag["id"]) for tag in parent.get("available_tags", [])}
            if parent.get("type") != FORUM or not set(map(str, body["applied_tags"])) <= offered:
                return _error(400, 50035, "Invalid Form Body")
            found["applied_tags"] = [str(tag) for tag in body["applied_tags"]]
        if "name" in body:
            found["name"] = body["name"]
        for key in ("archived", "locked"):
            if key in body:
                found["thread_metadata"][key] = body[key]
        await self.dispatch("THREAD_UPDATE", found)
        return _json(found)

    async def _callback(
        self, request: web.Request, body: Any, interaction_id: str, token: str
    ) -> web.Response:
        if interaction_id in self.expired:
            return _error(404, 10062, "Unknown interaction")
        kind = body["type"]
        data = body.get("data") or {}
        flags = data.get("flags", 0)
        origin = self._interactions.get(interaction_id, {})
        response: dict[str, Any] = {
            "interaction": {
                "id": interaction_id,
                "type": origin.get("type", 2),
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(flags & 64),
            }
        }
        if kind in (4, 5):  # a message: the content, or "thinking…" for a deferred one
            channel_id = origin.get("channel_id", self.channel_id)
            message = self._bot_message(channel_id, data, flags=flags | (128 if kind == 5 else 0))
            message["interaction_token"] = token
            self._originals[token] = message["id"]
            response["interaction"]["response_message_id"] = message["id"]
            response["resource"] = {"type": kind, "message": message}
        elif kind == 7:  # update the message whose component was used
            found = self.messages.get(str(origin.get("message", {}).get("id")))
            if found is None:
                return _error(400, 50035, "Invalid Form Body")
            _apply_edit(found, data)
            response["resource"] = {"type": kind, "message": found}
        elif kind == 9:  # a modal: shown to the user, who may submit it (`submit_modal`)
            if origin.get("type") == 5:
                return _error(400, 50035, "Invalid Form Body")  # no modal in answer to a modal
            self.modals[interaction_id] = data
        return _json(response)

    async def _get_original(self, request: web.Request, body: Any, token: str) -> web.Response:
        if token not in self._originals:
            return _error(404, 10008, "Unknown Message")
        return _json(self.messages[self._originals[token]])

    async def _edit_original(self, request: web.Request, body: Any, token: str) -> web.Response:
        if token not in self._originals:
            return _error(404, 10008, "Unknown Message")
        found = self.messages[self._originals[token]]
        _apply_edit(found, body)
        found["flags"] &= ~128  # no longer "thinking"
        return _json(found)

    async def _followup(self, request: web.Request, body: Any, token: str) -> web.Response:
        origin = next((i for i in self._interactions.values() if i["token"] == token), {})
        message = self._bot_message(origin.get("channel_id", self.channel_id), body)
        message["interaction_token"] = token
        return _json(message)


def _apply_edit(message: dict[str, Any], body: dict[str, Any]) -> None:
    """Apply a message edit as Discord does (SUPPRESS_EMBEDS drops the embeds)."""
    for key in ("content", "embeds", "components", "allowed_mentions"):
        if key in body:
            message[key] = body[key]
    if "flags" in body:
        message["flags"] = (message["flags"] & ~SUPPRESS_EMBEDS) | (body["flags"] & SUPPRESS_EMBEDS)
    if message["flags"] & SUPPRESS_EMBEDS:
        message["embeds"] = []
    message["edited_timestamp"] = _now()


def _member(roles: list[str] | None) -> dict[str, Any]:
    """A guild member object, as it rides on messages and interactions."""
    return {"roles": list(roles or []), "joined_at": _now(), "deaf": False, "mute": False, "flags": 0}


def _json(data: Any, status: int = 200) -> web.Response:
    """JSON as Discord sends it: exactly `application/json` (discord.py checks for that)."""
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"code": code, "message": message}, status=status)
