"""`/reindex` on Slack (admins): start a reindex or join the running one, and edit one message
with its progress; `/reindex status` shows the running job or the last run.

Who may: users in SLACK_ADMIN_USER_IDS, plus workspace admins/owners when
SLACK_WORKSPACE_ADMINS_CAN_REINDEX is on. Accepting deletions (`/reindex force`) is for the
listed admins only: a workspace admin's plain reindex never deletes past the safety gate.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError

from bot.chat.reindex import follow
from bot.chat.texts import FORCE_NOT_ADMIN, NOT_ADMIN
from bot.slack.calls import error_of, safe_respond, safe_update
from bot.slack.render import escape
from core.config import Settings
from core.runlog import IndexRun
from core.service import ReindexJob

if TYPE_CHECKING:
    from slack_bolt.app.async_app import AsyncApp

    from bot.slack.adapter import SlackAdapter

log = logging.getLogger("docsbot.slack")

REINDEX_USAGE = "Usage: `/reindex` (start), `/reindex force` (apply refused deletions), `/reindex status`."


class Reindex:
    def __init__(self, slack: SlackAdapter) -> None:
        self.slack = slack
        self.core = slack.core
        self.settings = slack.settings
        self.admins = Settings.id_list(self.settings.slack_admin_user_ids)

    def register(self, app: AsyncApp) -> None:
        app.command("/reindex")(self.on_reindex)

    async def on_reindex(self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        self.slack.spawn(self.reindex_command(command, respond), "reindex")

    async def reindex_command(self, command: dict[str, Any], respond: AsyncRespond) -> None:
        user, channel = str(command.get("user_id", "")), str(command.get("channel_id", ""))
        argument = str(command.get("text", "")).strip().lower()
        if not await self.is_admin(user):
            log.warning("slack: /reindex %s refused: user %s is not an admin", argument, user)
            await safe_respond(respond, text=NOT_ADMIN, response_type="ephemeral")
            return
        if argument == "status":
            await safe_respond(respond, text=self.status_text(), response_type="ephemeral")
            return
        if argument not in ("", "force"):
            await safe_respond(respond, text=REINDEX_USAGE, response_type="ephemeral")
            return
        force = argument == "force"
        if force and user not in self.admins:
            log.warning("slack: /reindex force refused: user %s is not a listed admin", user)
            await safe_respond(respond, text=FORCE_NOT_ADMIN, response_type="ephemeral")
            return
        job, started = self.core.service.start_reindex(trigger=f"slack:{user}", force=force)
        if not started:
            text = f"A reindex is already running (started by {job.trigger}): {job.progress.describe()}."
            await safe_respond(respond, text=text, response_type="ephemeral")
            return
        log.info("slack: reindex started by %s (force=%s)", user, force)
        await self.report_progress(job, channel, user, respond)

    async def is_admin(self, user: str) -> bool:
        """Listed in SLACK_ADMIN_USER_IDS, or a workspace admin/owner when that is allowed."""
        if user in self.admins:
            return True
        if not self.settings.slack_workspace_admins_can_reindex:
            return False
        try:
            info = await self.slack.client_.users_info(user=user)
        except SlackApiError as exc:
            log.warning("slack: could not look up %s: %s", user, error_of(exc))
            return False
        profile = info.get("user") or {}
        return bool(profile.get("is_admin") or profile.get("is_owner") or profile.get("is_primary_owner"))

    async def report_progress(self, job: ReindexJob, channel: str, user: str, respond: AsyncRespond) -> None:
        """One message in the channel, edited with the progress (when it changed, at most once
        per STREAM_EDIT_INTERVAL), then with the outcome."""
        client = self.slack.client_
        title = f":arrows_counterclockwise: Reindex started by <@{user}>"
        ts: str | None = None
        shown = f"{title}: {job.progress.describe()}"
        try:
            posted = await client.chat_postMessage(channel=channel, text=shown)
            ts = str(posted["ts"])
        except SlackApiError as exc:  # not in the channel: report through the response URL instead
            log.warning("slack: could not post reindex progress in %s: %s", channel, error_of(exc))
            await safe_respond(
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
            await safe_update(client, channel, ts, text)
        else:
            await safe_respond(respond, text=text, response_type="ephemeral")

    def status_text(self) -> str:
        running = self.core.service.running_reindex
        lines = []
        if running is not None:
            lines.append(
                f"A reindex is running (started by {running.trigger}): {running.progress.describe()}."
            )
        last = self.core.service.last_run()
        lines.append(describe_run(last, last_run=True) if last else "No reindex has finished yet.")
        return "\n".join(lines)


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
