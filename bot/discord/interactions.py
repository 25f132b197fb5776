"""Small helpers for Discord interactions (slash commands, buttons, modals), shared by the cogs."""

from __future__ import annotations

import logging
from typing import Any

import discord

from bot.discord.render import NO_PINGS

log = logging.getLogger("docsbot.discord")

#: Discord's error code for an interaction token that expired (not acknowledged within 3 s).
UNKNOWN_INTERACTION = 10062


def is_expired(error: BaseException) -> bool:
    """Whether Discord said the interaction is unknown (its 3-second window passed)."""
    return isinstance(error, discord.NotFound) and error.code == UNKNOWN_INTERACTION


async def reply_privately(interaction: discord.Interaction[Any], text: str) -> None:
    """An ephemeral reply, whether or not the interaction was already acknowledged; never raises."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
        else:
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)
    except discord.HTTPException as exc:
        if is_expired(exc):
            log.warning("interaction expired before I could tell the user: %s", text)
        else:
            log.warning("could not reply to an interaction: %s", exc)
