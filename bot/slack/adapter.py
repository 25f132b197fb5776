"""The Slack front end: mentions, thread follow-ups, /ask, admin /reindex and feedback buttons.

Built on slack-bolt's `AsyncApp`. Socket Mode by default (SLACK_APP_TOKEN, no public URL), or
the HTTP Events API (SLACK_MODE=http: events, slash commands and interactivity all POST to
`/slack/events` on SLACK_HTTP_HOST:SLACK_HTTP_PORT, signed with SLACK_SIGNING_SECRET).

Every listener acks at once and hands the work to a tracked task; answers go through `ChatCore`
(rate limit, throttled streaming edits, records). Nothing a listener does can raise into bolt:
failures are logged and the user gets one honest sentence.

    adapter = SlackAdapter(core)
    await adapter.run()        # serves until cancelled
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
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
from bot.chat.reindex import follow
from bot.chat.tasks import InFlight
from bot.chat.texts import FEEDBACK_THANKS, FEEDBACK_UNKNOWN, NOT_ADMIN
from bot.slack.render import (
    FEEDBACK_DOWN,
    FEEDBACK_UP,
    answer_messages,
    escape,
    fallback_text,
    slack_to_plain,
    split_mrkdwn,
    streaming_text,
)
from core.config import Settings
from core.errors import ConfigError, DocsBotError
from core.prompting import Turn
from core.runlog import IndexRun
from core.service import ReindexJob

log = logging.getLogger("docsbot.slack")

PLACEHOLDER = ":mag: Looking through the Milvus docs…"
REINDEX_USAGE = "Usage: `/reindex` (start), `/reindex force` (apply refused deletions), `/reindex status`."
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
        self.admins = Settings.id_list(self.settings.slack_admin_user_ids)
        self.ready = asyncio.Event()  # set once connected (socket) or listening (http)
        self.port: int | None = None  # the bound HTTP port in http mode (SLACK_HTTP_PORT may be 0)
        self.app: AsyncApp | None = None
        self.client: AsyncWebClient | None = None
        self._tasks = InFlight("slack")
        self._events = Seen()  # event ids: Slack retries a delivery it thinks was lost
        self._messages = Seen()  # channel:ts: one message can arrive as app_mention and message
        self._threads = Seen(max_age=7 * 24 * 3600.0)  # channel:thread_ts the bot answered in

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

    def _spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run `work` as a tracked task (cancelled at shutdown); its failures are logged."""
        self._tasks.spawn(work, what)

    # --- the bolt app -----------------------------------------------------------------------

    def build_app(self, client: AsyncWebClient) -> AsyncApp:
        """The bolt app with our listeners; `client` is its Web API client (SLACK_API_URL)."""
        app = AsyncApp(
            client=client,
            signing_secret=self.settings.slack_signing_secret.get_secret_value(),
            name="docsbot",
            logger=logging.getLogger("docsbot.slack.bolt"),
        )
        app.middleware(self._drop_duplicates)
        app.event("app_mention")(self._on_mention)
        app.event("message")(self._on_message)
        app.command("/ask")(self._on_ask)
        app.command("/reindex")(self._on_reindex)
        app.action(FEEDBACK_UP)(self._on_feedback)
        app.action(FEEDBACK_DOWN)(self._on_feedback)
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

    async def _on_mention(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        if _from_a_bot(event):
            return
        self._spawn(self._answer_message(event, context.bot_user_id or "", context.bot_id or ""), "mention")

    async def _on_message(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """Thread replies in a thread the bot answered are follow-ups (mentions come as app_mention)."""
        if _from_a_bot(event) or event.get("subtype") not in (None, "thread_broadcast"):
            return
        thread_ts, channel = event.get("thread_ts"), event.get("channel")
        bot_user_id = context.bot_user_id or ""
        if not thread_ts or thread_ts == event.get("ts") or f"{channel}:{thread_ts}" not in self._threads:
            return
        if bot_user_id and f"<@{bot_user_id}" in event.get("text", ""):
            return  # the app_mention event answers it
        self._spawn(self._answer_message(event, bot_user_id, context.bot_id or ""), "follow-up")

    async def _on_ask(self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        self._spawn(self._answer_command(command, respond), "ask")

    async def _on_reindex(self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        self._spawn(self._reindex_command(command, respond), "reindex")

    async def _on_feedback(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        self._spawn(self._record_feedback(body, action, respond), "feedback")

    # --- answering --------------------------------------------------------------------------

    async def _answer_message(self, event: dict[str, Any], bot_user_id: str, bot_id: str) -> None:
        """A mention or a thread follow-up: answer in the thread, with its earlier turns."""
        channel, ts = str(event.get("channel", "")), str(event.get("ts", ""))
        if not self._messages.first_time(f"{channel}:{ts}"):
            return
        user = str(event.get("user", ""))
        thread_ts = str(event.get("thread_ts") or ts)
        question = slack_to_plain(str(event.get("text", "")), bot_user_id)
        refusal = self.core.refuse(user, question)
        if refusal is not None:
            await self._tell(channel, user, refusal, thread_ts)
            return
        history: Sequence[Turn] = ()
        if event.get("thread_ts"):
            history = await self._thread_history(channel, thread_ts, ts, bot_user_id, bot_id)
        if await self._stream_answer(channel, user, question, history, thread_ts=thread_ts):
            self._threads.first_time(f"{channel}:{thread_ts}")

    async def _answer_command(self, command: dict[str, Any], respond: AsyncRespond) -> None:
        """/ask: visible in the channel (streamed), or only to the asker (SLACK_ASK_EPHEMERAL)."""
        channel, user = str(command.get("channel_id", "")), str(command.get("user_id", ""))
        question = slack_to_plain(str(command.get("text", "")))
        refusal = self.core.refuse(user, question)
        if refusal is not None:
            await _safe_respond(respond, text=refusal, response_type="ephemeral")
            return
        header = f"<@{user}> asked: {escape(question[:500])}"
        if self.settings.slack_ask_ephemeral:
            await self._respond_answer(respond, user, channel, question, header, "ephemeral")
        elif not await self._stream_answer(channel, user, question, (), header=header):
            # Not a member of the channel (or a DM with someone else): the response URL still works.
            await self._respond_answer(respond, user, channel, question, header, "in_channel")

    async def _stream_answer(
        self,
        channel: str,
        user: str,
        question: str,
        history: Sequence[Turn],
        *,
        thread_ts: str | None = None,
        header: str = "",
    ) -> bool:
        """Placeholder at once, throttled edits while the answer streams, then the final blocks.
        False when the placeholder could not be posted (nothing was asked)."""
        client = self._client
        first = f"{header}\n{PLACEHOLDER}" if header else PLACEHOLDER
        try:
            posted = await client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, text=first, unfurl_links=False, unfurl_media=False
            )
        except SlackApiError as exc:
            log.warning("slack: could not post in %s: %s", channel, exc.response.get("error"))
            return False
        ts = str(posted["ts"])
        prefix = f"{header}\n" if header else ""

        async def edit(partial: str) -> None:
            await client.chat_update(channel=channel, ts=ts, text=prefix + streaming_text(partial))

        try:
            answer, ttft = await self.core.relay(self.core.service.stream(question, history), edit)
            answer_id = await self.core.record("slack", channel, user, question, answer, ttft)
            messages = answer_messages(answer, answer_id, header)
            await client.chat_update(channel=channel, ts=ts, text=fallback_text(answer), blocks=messages[0])
            for blocks in messages[1:]:
                await client.chat_postMessage(
                    channel=channel,
                    thread_ts=thread_ts or ts,
                    text=fallback_text(answer),
                    blocks=blocks,
                    unfurl_links=False,
                    unfurl_media=False,
                )
        except Exception:
            log.exception("slack: answering in %s failed", channel)
            try:
                await client.chat_update(channel=channel, ts=ts, text=prefix + DocsBotError.user_message)
            except SlackApiError as exc:
                log.warning("slack: could not post the error message: %s", exc.response.get("error"))
        return True

    async def _respond_answer(
        self, respond: AsyncRespond, user: str, channel: str, question: str, header: str, response_type: str
    ) -> None:
        """The whole answer through the command's response URL (no streaming there)."""

        async def no_edit(_partial: str) -> None:
            return None

        answer, ttft = await self.core.relay(self.core.service.stream(question), no_edit)
        answer_id = await self.core.record("slack", channel, user, question, answer, ttft)
        for blocks in answer_messages(answer, answer_id, header):
            await _safe_respond(
                respond, text=fallback_text(answer), blocks=blocks, response_type=response_type
            )

    async def _thread_history(
        self, channel: str, thread_ts: str, before_ts: str, bot_user_id: str, bot_id: str
    ) -> list[Turn]:
        """The thread's earlier messages as turns: the bot's are "assistant", people's "user"."""
        try:
            replies = await self._client.conversations_replies(channel=channel, ts=thread_ts, limit=50)
        except SlackApiError as exc:
            log.warning(
                "slack: could not read thread %s in %s: %s", thread_ts, channel, exc.response.get("error")
            )
            return []
        turns: list[Turn] = []
        for message in replies.get("messages") or []:
            ts = str(message.get("ts", ""))
            if not ts or float(ts) >= float(before_ts):
                continue
            text = str(message.get("text", ""))
            if message.get("user") == bot_user_id or (bot_id and message.get("bot_id") == bot_id):
                if text and PLACEHOLDER not in text and not text.endswith("▍"):
                    turns.append(Turn("assistant", slack_to_plain(text)))
            elif not message.get("bot_id"):
                question = slack_to_plain(text, bot_user_id)
                if question:
                    turns.append(Turn("user", question))
        return turns

    async def _tell(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
        """A short message only `user` sees (usage help, rate limit, refusals)."""
        try:
            await self._client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
        except SlackApiError as exc:
            log.warning("slack: could not tell %s in %s: %s", user, channel, exc.response.get("error"))

    # --- /reindex ---------------------------------------------------------------------------

    async def _reindex_command(self, command: dict[str, Any], respond: AsyncRespond) -> None:
        user, channel = str(command.get("user_id", "")), str(command.get("channel_id", ""))
        argument = str(command.get("text", "")).strip().lower()
        if not await self.is_admin(user):
            log.warning("slack: /reindex %s refused: user %s is not an admin", argument, user)
            await _safe_respond(respond, text=NOT_ADMIN, response_type="ephemeral")
            return
        if argument == "status":
            await _safe_respond(respond, text=self._status_text(), response_type="ephemeral")
            return
        if argument not in ("", "force"):
            await _safe_respond(respond, text=REINDEX_USAGE, response_type="ephemeral")
            return
        job, started = self.core.service.start_reindex(trigger=f"slack:{user}", force=argument == "force")
        if not started:
            text = f"A reindex is already running (started by {job.trigger}): {job.progress.describe()}."
            await _safe_respond(respond, text=text, response_type="ephemeral")
            return
        log.info("slack: reindex started by %s (force=%s)", user, argument == "force")
        await self._report_progress(job, channel, user, respond)

    async def is_admin(self, user: str) -> bool:
        """Listed in SLACK_ADMIN_USER_IDS, or a workspace admin/owner when that is allowed."""
        if user in self.admins:
            return True
        if not self.settings.slack_workspace_admins_can_reindex:
            return False
        try:
            info = await self._client.users_info(user=user)
        except SlackApiError as exc:
            log.warning("slack: could not look up %s: %s", user, exc.response.get("error"))
            return False
        profile = info.get("user") or {}
        return bool(profile.get("is_admin") or profile.get("is_owner") or profile.get("is_primary_owner"))

    async def _report_progress(self, job: ReindexJob, channel: str, user: str, respond: AsyncRespond) -> None:
        """One message in the channel, edited with the progress (when it changed, at most once
        per STREAM_EDIT_INTERVAL), then with the outcome."""
        client = self._client
        title = f":arrows_counterclockwise: Reindex started by <@{user}>"
        ts: str | None = None
        shown = f"{title}: {job.progress.describe()}"
        try:
            posted = await client.chat_postMessage(channel=channel, text=shown)
            ts = str(posted["ts"])
        except SlackApiError as exc:  # not in the channel: report through the response URL instead
            log.warning(
                "slack: could not post reindex progress in %s: %s", channel, exc.response.get("error")
            )
            await _safe_respond(
                respond, text=f"{title}. I'll tell you here when it's done.", response_type="ephemeral"
            )

        async def edit(text: str) -> None:
            if ts is not None:
                await client.chat_update(channel=channel, ts=ts, text=text)

        run = await follow(
            job,
            edit,
            lambda progress: f"{title}: {progress.describe()}",
            interval=self.settings.stream_edit_interval,
            shown=shown,
        )
        text = describe_run(run)
        if ts is not None:
            await _safe_update(client, channel, ts, text)
        else:
            await _safe_respond(respond, text=text, response_type="ephemeral")

    def _status_text(self) -> str:
        running = self.core.service.running_reindex
        lines = []
        if running is not None:
            lines.append(
                f"A reindex is running (started by {running.trigger}): {running.progress.describe()}."
            )
        last = self.core.service.last_run()
        lines.append(describe_run(last, last_run=True) if last else "No reindex has finished yet.")
        return "\n".join(lines)

    # --- feedback ---------------------------------------------------------------------------

    async def _record_feedback(
        self, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        user = str((body.get("user") or {}).get("id", ""))
        vote = 1 if action.get("action_id") == FEEDBACK_UP else -1
        known = await self.core.feedback(str(action.get("value", "")), user, vote)
        text = FEEDBACK_THANKS[vote] if known else FEEDBACK_UNKNOWN
        await _safe_respond(respond, text=text, response_type="ephemeral", replace_original=False)

    async def post(self, channel: str, text: str) -> None:
        """Post an operator message (the weekly report) to a channel, as fixed-width text."""
        for part in split_mrkdwn(escape(text)):
            await self._client.chat_postMessage(
                channel=channel, text=f"```{part}```", unfurl_links=False, unfurl_media=False
            )

    @property
    def _client(self) -> AsyncWebClient:
        assert self.client is not None, "run() sets the client"
        return self.client


def describe_run(run: IndexRun, *, last_run: bool = False) -> str:
    """A finished reindex in one or two lines of mrkdwn."""
    counts = run.counts()
    when = f" ({run.trigger}, finished {run.finished_at or run.started_at})" if last_run else ""
    name = "Last reindex" if last_run else "Reindex"
    message = f"\n{escape(run.message)}" if run.message else ""
    if run.outcome == "ok":
        return f":white_check_mark: {name} finished in {run.seconds:.0f} s{when}: {counts}.{message}"
    if run.outcome == "needs_review":
        return (
            f":warning: {name} needs review{when}: {counts}. Nothing was deleted; "
            f"`/reindex force` applies the deletions.{message}"
        )
    return f":x: {name} failed{when}: {counts}. The bot keeps answering from the previous index.{message}"


def _from_a_bot(event: dict[str, Any]) -> bool:
    return bool(event.get("bot_id") or event.get("bot_profile") or event.get("subtype") == "bot_message")


async def _safe_update(client: AsyncWebClient, channel: str, ts: str, text: str) -> None:
    try:
        await client.chat_update(channel=channel, ts=ts, text=text)
    except SlackApiError as exc:
        log.warning("slack: could not update %s in %s: %s", ts, channel, exc.response.get("error"))


async def _safe_respond(respond: AsyncRespond, **message: Any) -> None:
    """Post through the response URL; failures are logged, never raised."""
    try:
        await respond(**message)
    except Exception as exc:
        log.warning("slack: could not respond: %s", exc)


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
