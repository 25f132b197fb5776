"""Buttons under Slack answers: 👍, 👎 (which asks why in a dialog) and "Still need help?".

- 👍 / 👎 store the vote at once. 👎 then opens a dialog (views.open, within Slack's 3-second
  trigger window): wrong / outdated / not what I asked / other, plus free text. Its submission
  stores the reason with that vote (core/records.py) and `docsbot report` shows the reasons.
- "Still need help?" (only when SLACK_ESCALATION_USERGROUP is set) posts once in the thread,
  mentioning that user group: `<!subteam^ID>` is the one mention the bot ever makes. The thread
  is recorded as escalated, and the bot stops answering there.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError

from bot.chat.texts import (
    ESCALATED,
    ESCALATED_ALREADY,
    FEEDBACK_THANKS,
    FEEDBACK_UNKNOWN,
    WHY_REASONS,
    WHY_THANKS,
)
from bot.slack.calls import error_of, safe_respond, tell
from bot.slack.render import ESCALATE, FEEDBACK_DOWN, FEEDBACK_UP, WHY_REASON, WHY_TEXT, WHY_VIEW, why_modal

if TYPE_CHECKING:
    from slack_bolt.app.async_app import AsyncApp

    from bot.slack.adapter import SlackAdapter

log = logging.getLogger("docsbot.slack")


class Feedback:
    """The answer buttons and the 👎 dialog."""

    def __init__(self, slack: SlackAdapter) -> None:
        self.slack = slack
        self.core = slack.core
        self.usergroup = slack.settings.slack_escalation_usergroup

    def register(self, app: AsyncApp) -> None:
        app.action(FEEDBACK_UP)(self.on_vote)
        app.action(FEEDBACK_DOWN)(self.on_vote)
        app.action(ESCALATE)(self.on_escalate)
        app.view(WHY_VIEW)(self.on_why)

    # --- votes ------------------------------------------------------------------------------

    async def on_vote(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        vote = 1 if action.get("action_id") == FEEDBACK_UP else -1
        answer_id = str(action.get("value", ""))
        user = str((body.get("user") or {}).get("id", ""))
        if vote < 0 and await self._ask_why(body, answer_id):
            # the dialog must open within 3 s of the click: open it before storing the vote
            self.slack.spawn(self._vote(answer_id, user, vote), "feedback")
            return
        self.slack.spawn(self._vote(answer_id, user, vote, respond), "feedback")

    async def _vote(self, answer_id: str, user: str, vote: int, respond: AsyncRespond | None = None) -> None:
        """Store the vote; thank through the response URL (not after the 👎 dialog: it thanks)."""
        known = await self.core.feedback(answer_id, user, vote)
        if respond is not None:
            text = FEEDBACK_THANKS[vote] if known else FEEDBACK_UNKNOWN
            await safe_respond(respond, text=text, response_type="ephemeral", replace_original=False)

    async def _ask_why(self, body: dict[str, Any], answer_id: str) -> bool:
        """Open the 👎 dialog; False when it could not be opened (then thank as usual)."""
        trigger = str(body.get("trigger_id", ""))
        channel, thread = _where(body)
        try:
            await self.slack.client_.views_open(
                trigger_id=trigger, view=why_modal(answer_id, channel, thread)
            )
            return True
        except SlackApiError as exc:
            log.warning("slack: could not open the 👎 dialog: %s", error_of(exc))
            return False

    async def on_why(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        """The 👎 dialog was sent: store its reason with the vote, say thanks."""
        values = (view.get("state") or {}).get("values") or {}
        chosen = ((values.get(WHY_REASON) or {}).get(WHY_REASON) or {}).get("selected_option") or {}
        reason = str(chosen.get("value", ""))
        if reason not in WHY_REASONS:
            await ack(response_action="errors", errors={WHY_REASON: "Please pick one."})
            return
        await ack()
        details = str(((values.get(WHY_TEXT) or {}).get(WHY_TEXT) or {}).get("value") or "")
        user = str((body.get("user") or {}).get("id", ""))
        try:
            meta = json.loads(str(view.get("private_metadata") or "{}"))
        except ValueError:
            meta = {}
        self.slack.spawn(self._store_reason(meta, user, reason, details), "feedback-reason")

    async def _store_reason(self, meta: dict[str, Any], user: str, reason: str, details: str) -> None:
        known = await self.core.reason(str(meta.get("answer_id", "")), user, reason, details)
        channel = str(meta.get("channel", ""))
        if channel:
            text = WHY_THANKS if known else FEEDBACK_UNKNOWN
            await tell(self.slack.client_, channel, user, text, str(meta.get("thread") or "") or None)

    # --- "Still need help?" -------------------------------------------------------------------

    async def on_escalate(self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        self.slack.spawn(self._escalate(body, str(action.get("value", ""))), "escalation")

    async def _escalate(self, body: dict[str, Any], answer_id: str) -> None:
        channel, thread = _where(body)
        user = str((body.get("user") or {}).get("id", ""))
        if not (self.usergroup and channel and thread):
            return
        if not await self.core.escalate(answer_id, "slack", channel, thread, user):
            await tell(self.slack.client_, channel, user, ESCALATED_ALREADY, thread)
            return
        self.slack.quiet_in(channel, thread)
        text = ESCALATED.format(people=f"<!subteam^{self.usergroup}>")
        try:
            await self.slack.client_.chat_postMessage(
                channel=channel, thread_ts=thread, text=text, unfurl_links=False, unfurl_media=False
            )
        except SlackApiError as exc:
            log.warning("slack: could not ask the helpers in %s: %s", channel, error_of(exc))


def _where(body: dict[str, Any]) -> tuple[str, str]:
    """The channel and thread of the message whose button was clicked."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
    thread = str(
        message.get("thread_ts")
        or container.get("thread_ts")
        or message.get("ts")
        or container.get("message_ts")
        or ""
    )
    return channel, thread
