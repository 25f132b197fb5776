"""The Slack adapter: the bolt app, its connection (Socket Mode or HTTP) and its lifetime.

Built on slack-bolt's `AsyncApp`. Socket Mode by default (SLACK_APP_TOKEN, no public URL), or
the HTTP Events API (SLACK_MODE=http: events, slash commands and interactivity all POST to
`/slack/events` on SLACK_HTTP_HOST:SLACK_HTTP_PORT, signed with SLACK_SIGNING_SECRET).

Each feature is a module of this package that registers its listeners on the app:
`questions.py` (mentions, follow-ups, auto-reply channels, /ask; answers through `reply.py`:
native streaming or edits), `feedback.py` (👍/👎 with the "why?" dialog, "Still need help?") and
`reindex.py` (/reindex). Rendering is in `render.py`. Every listener acks at once and hands the
work to a tracked task; nothing a listener does can raise into bolt: failures are logged and
the user gets one honest sentence.

    adapter = SlackAdapter(core)
    await adapter.run()        # serves until cancelled
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.flow import ChatCore
from bot.chat.limits import Seen
from bot.chat.tasks import InFlight
from bot.slack.feedback import Feedback
from bot.slack.questions import Questions
from bot.slack.reindex import Reindex, describe_run
from bot.slack.render import escape, split_mrkdwn
from bot.slack.reply import PLACEHOLDER, StreamingSupport
from core.config import Settings
from core.errors import ConfigError

__all__ = ["PLACEHOLDER", "SlackAdapter", "describe_run", "events_app"]

log = logging.getLogger("docsbot.slack")

#: Slack errors that mean the token itself is bad (a configuration problem, not an outage).
_AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
    }
)
#: Seconds per Slack Web API call; retries (429 per Retry-After, 5xx, connection) come on top.
API_TIMEOUT = 15.0


class SlackAdapter:
    """`docsbot serve`'s Slack adapter (the `Adapter` protocol of bot/serve.py)."""

    name = "slack"

    def __init__(self, core: ChatCore) -> None:
        self.core = core
        self.settings: Settings = core.settings
        self._check_settings()
        self.ready = asyncio.Event()  # set once connected (socket) or listening (http)
        self.port: int | None = None  # the bound HTTP port in http mode (SLACK_HTTP_PORT may be 0)
        self.app: AsyncApp | None = None
        self.client: AsyncWebClient | None = None
        self.streaming = StreamingSupport(enabled=self.settings.slack_streaming == "native")
        self.escalation_enabled = bool(self.settings.slack_escalation_usergroup)
        self._tasks = InFlight("slack")
        self._events = Seen()  # event ids: Slack retries a delivery it thinks was lost
        self._quiet = Seen(max_age=30 * 24 * 3600.0)  # channel:thread handed to a person (cache)
        self.questions = Questions(self)
        self.feedback = Feedback(self)
        self.reindex = Reindex(self)

    def _check_settings(self) -> None:
        s = self.settings
        if not s.slack_bot_token.get_secret_value():
            raise ConfigError("SLACK_BOT_TOKEN is required for Slack")
        if s.slack_mode == "socket" and not s.slack_app_token.get_secret_value():
            raise ConfigError(
                "SLACK_APP_TOKEN (xapp-...) is required for Slack Socket Mode (SLACK_MODE=socket)"
            )
        if s.slack_mode == "http" and not s.slack_signing_secret.get_secret_value():
            raise ConfigError("SLACK_SIGNING_SECRET is required for SLACK_MODE=http")

    # --- lifetime ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect (socket) or listen (http) and serve until cancelled; clean up on the way out."""
        timeout = aiohttp.ClientTimeout(total=API_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self.client = AsyncWebClient(
                token=self.settings.slack_bot_token.get_secret_value(),
                base_url=self.settings.slack_api_url,
                session=session,
                logger=log,
                retry_handlers=[
                    AsyncConnectionErrorRetryHandler(max_retry_count=2),
                    AsyncRateLimitErrorRetryHandler(max_retry_count=3),
                    AsyncServerErrorRetryHandler(max_retry_count=2),
                ],
            )
            self.app = self.build_app(self.client)
            try:
                await self._check_token(self.client)
                if self.settings.slack_mode == "socket":
                    await self._serve_socket_mode(self.app, self.client)
                else:
                    await self._serve_http(self.app)
            finally:
                self.ready.clear()
                await self._tasks.cancel()

    async def _check_token(self, client: AsyncWebClient) -> None:
        try:
            auth = await client.auth_test()
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error in _AUTH_ERRORS:
                raise ConfigError(f"Slack rejected SLACK_BOT_TOKEN ({error})") from exc
            raise
        log.info("slack: signed in as %s (%s) in %s", auth.get("user"), auth.get("user_id"), auth.get("team"))
        if self.settings.slack_mode == "socket":  # the Socket Mode client would retry a bad one forever
            try:
                await client.apps_connections_open(app_token=self.settings.slack_app_token.get_secret_value())
            except SlackApiError as exc:
                error = str(exc.response.get("error", ""))
                if error in _AUTH_ERRORS:
                    raise ConfigError(f"Slack rejected SLACK_APP_TOKEN ({error})") from exc
                raise

    async def _serve_socket_mode(self, app: AsyncApp, client: AsyncWebClient) -> None:
        handler = AsyncSocketModeHandler(
            app, self.settings.slack_app_token.get_secret_value(), web_client=client
        )
        try:
            await handler.connect_async()  # type: ignore[no-untyped-call]
            log.info("slack: connected in Socket Mode")
            self.ready.set()
            await asyncio.Event().wait()
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]

    async def _serve_http(self, app: AsyncApp) -> None:
        runner = web.AppRunner(events_app(app), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.settings.slack_http_host, self.settings.slack_http_port)
            await site.start()
            self.port = int(runner.addresses[0][1])
            log.info(
                "slack: listening on http://%s:%d/slack/events", self.settings.slack_http_host, self.port
            )
            self.ready.set()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run `work` as a tracked task (cancelled at shutdown); its failures are logged."""
        self._tasks.spawn(work, what)

    # --- the bolt app -----------------------------------------------------------------------

    def build_app(self, client: AsyncWebClient) -> AsyncApp:
        """The bolt app with the features' listeners; `client` is its Web API client."""
        app = AsyncApp(
            client=client,
            signing_secret=self.settings.slack_signing_secret.get_secret_value(),
            name="docsbot",
            logger=logging.getLogger("docsbot.slack.bolt"),
        )
        app.middleware(self._drop_duplicates)
        for feature in (self.questions, self.feedback, self.reindex):
            feature.register(app)
        app.error(self._on_error)
        return app

    async def _drop_duplicates(
        self, req: AsyncBoltRequest, body: dict[str, Any], next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        """Ack a re-delivered event (same event_id, e.g. with X-Slack-Retry-Num) without
        handling it again. Runs after bolt's signature check."""
        event_id = body.get("event_id")
        if (
            body.get("type") == "event_callback"
            and isinstance(event_id, str)
            and not self._events.first_time(event_id)
        ):
            retry = req.headers.get("x-slack-retry-num", ["0"])[0]
            log.info("slack: duplicate event %s (retry %s) ignored", event_id, retry)
            return BoltResponse(status=200, body="")
        return await next()

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("slack: listener failed on a %s request: %s", body.get("type", "?"), error, exc_info=error)

    # --- what the features share ------------------------------------------------------------

    async def is_admin(self, user: str) -> bool:
        return await self.reindex.is_admin(user)

    async def escalated(self, channel: str, thread: str) -> bool:
        """Whether someone asked for a person in this thread (the bot stays out of it then)."""
        key = f"{channel}:{thread}"
        if key in self._quiet:
            return True
        if await self.core.is_escalated("slack", channel, thread):
            self._quiet.first_time(key)
            return True
        return False

    def quiet_in(self, channel: str, thread: str) -> None:
        self._quiet.first_time(f"{channel}:{thread}")

    async def post(self, channel: str, text: str) -> None:
        """Post an operator message (the weekly report) to a channel, as fixed-width text."""
        for part in split_mrkdwn(escape(text)):
            await self.client_.chat_postMessage(
                channel=channel, text=f"```{part}```", unfurl_links=False, unfurl_media=False
            )

    @property
    def client_(self) -> AsyncWebClient:
        """The Web API client (set by `run`)."""
        assert self.client is not None, "run() sets the client"
        return self.client


#: The largest request body the Slack HTTP endpoint reads (aiohttp answers 413 beyond it). Slack's
#: events, commands and interaction payloads are a few KB (a 40,000-character message with blocks
#: stays well under this); set explicitly, half aiohttp's 1 MiB default.
SLACK_MAX_REQUEST_BYTES = 512 * 1024


def events_app(app: AsyncApp, path: str = "/slack/events") -> web.Application:
    """bolt's aiohttp endpoint (signature check, dispatch) on an app with an explicit body cap."""
    from slack_bolt.app.async_server import AsyncSlackAppServer

    web_app = web.Application(client_max_size=SLACK_MAX_REQUEST_BYTES)
    web_app.router.add_post(path, AsyncSlackAppServer(port=0, path=path, app=app).handle_post_requests)
    return web_app
