"""Small Web API helpers the Slack features share: calls whose failure is logged, never raised."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger("docsbot.slack")


def error_of(exc: SlackApiError) -> str:
    """Slack's error code ("not_in_channel", ...) of a failed call."""
    return str(exc.response.get("error", "")) if exc.response is not None else ""


def from_a_bot(event: dict[str, Any]) -> bool:
    return bool(event.get("bot_id") or event.get("bot_profile") or event.get("subtype") == "bot_message")


async def tell(
    client: AsyncWebClient, channel: str, user: str, text: str, thread_ts: str | None = None
) -> None:
    """A short message only `user` sees (usage help, rate limit, refusals, thanks)."""
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
    except SlackApiError as exc:
        log.warning("slack: could not tell %s in %s: %s", user, channel, error_of(exc))


async def safe_update(client: AsyncWebClient, channel: str, ts: str, text: str) -> None:
    try:
        await client.chat_update(channel=channel, ts=ts, text=text)
    except SlackApiError as exc:
        log.warning("slack: could not update %s in %s: %s", ts, channel, error_of(exc))


async def safe_respond(respond: AsyncRespond, **message: Any) -> None:
    """Post through the response URL; failures are logged, never raised."""
    try:
        await respond(**message)
    except Exception as exc:
        log.warning("slack: could not respond: %s", exc)
