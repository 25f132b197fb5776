"""The buttons under a Discord answer: 👍/👎, and "Needs a human" in help threads.

A 👍 is stored at once. A 👎 is stored at once too, then asks why in a small dialog (a modal):
wrong, outdated, not what I asked, or something else, plus optional free text. The reason is
stored with the vote (`ChatCore.reason`) and shown in `docsbot report`, like Slack's.

The answer id rides in each button's custom_id, so clicks on answers sent before a restart still
land (the bot registers the button classes with `add_dynamic_items`). The dialog lives only in
this process, for at most `WHY_TIMEOUT` seconds: the vote is stored before it opens.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord

from bot.chat.texts import (
    FEEDBACK_THANKS,
    FEEDBACK_UNKNOWN,
    WHY_DETAILS,
    WHY_QUESTION,
    WHY_REASONS,
    WHY_THANKS,
    WHY_TITLE,
)
from bot.discord.escalation import NeedsHumanButton
from bot.discord.interactions import reply_privately

if TYPE_CHECKING:
    from bot.chat.flow import ChatCore

log = logging.getLogger("docsbot.discord")

#: Seconds the "why?" dialog waits for its answer.
WHY_TIMEOUT = 15 * 60
#: Free text kept from the dialog, at most (Discord's own limit for a text input is 4000).
WHY_DETAILS_MAX = 1000


class FeedbackButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"docsbot:vote:(?P<vote>up|down):(?P<answer_id>[0-9A-Za-z]{1,64})",
):
    """👍 or 👎 under an answer."""

    def __init__(self, answer_id: str, vote: int) -> None:
        up = vote > 0
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary,
                emoji="👍" if up else "👎",
                label="Helpful" if up else "Not helpful",
                custom_id=f"docsbot:vote:{'up' if up else 'down'}:{answer_id}",
            )
        )
        self.answer_id = answer_id
        self.vote = 1 if up else -1

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> FeedbackButton:
        return cls(match["answer_id"], 1 if match["vote"] == "up" else -1)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        core: ChatCore = interaction.client.core
        try:
            known = await core.feedback(self.answer_id, str(interaction.user.id), self.vote)
        except Exception:  # core.feedback does not raise; belt and braces for the user's sake
            log.exception("feedback failed")
            known = False
        if known and self.vote < 0:
            try:
                await interaction.response.send_modal(WhyModal(core, self.answer_id))
                return
            except discord.HTTPException as exc:  # e.g. the 3 s window passed: the vote is stored
                log.warning("could not open the why-dialog: %s", exc)
        await reply_privately(interaction, FEEDBACK_THANKS[self.vote] if known else FEEDBACK_UNKNOWN)


class WhyModal(discord.ui.Modal):
    """The 👎 dialog: a reason to pick and room for a few words."""

    def __init__(self, core: ChatCore, answer_id: str) -> None:
        super().__init__(title=WHY_TITLE, timeout=WHY_TIMEOUT)
        self.core = core
        self.answer_id = answer_id
        self.reason: discord.ui.Select[WhyModal] = discord.ui.Select(
            custom_id="reason",
            options=[discord.SelectOption(label=label, value=value) for value, label in WHY_REASONS.items()],
            min_values=1,
            max_values=1,
        )
        self.details: discord.ui.TextInput[WhyModal] = discord.ui.TextInput(
            custom_id="details",
            style=discord.TextStyle.paragraph,
            required=False,
            max_length=WHY_DETAILS_MAX,
        )
        self.add_item(discord.ui.Label(text=WHY_QUESTION[:45], component=self.reason))
        self.add_item(discord.ui.Label(text=WHY_DETAILS[:45], component=self.details))

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        reason = self.reason.values[0] if self.reason.values else "other"
        if reason not in WHY_REASONS:
            reason = "other"
        stored = await self.core.reason(self.answer_id, str(interaction.user.id), reason, self.details.value)
        await reply_privately(interaction, WHY_THANKS if stored else FEEDBACK_UNKNOWN)


def answer_view(answer_id: str, *, needs_human: bool = False, asked: bool = False) -> discord.ui.View:
    """The buttons under one answer (a persistent view: no timeout): 👍, 👎, and with
    `needs_human` the "Needs a human" button (disabled once `asked`)."""
    view = discord.ui.View(timeout=None)
    view.add_item(FeedbackButton(answer_id, +1))
    view.add_item(FeedbackButton(answer_id, -1))
    if needs_human:
        view.add_item(NeedsHumanButton(answer_id, asked=asked))
    return view
