""" "Needs a human": the button under answers in help threads (forum posts, auto-reply threads).

A click, the first for that thread:
- records the escalation (`ChatCore.escalate`; `docsbot report` counts it), so it happens once
  per thread even across restarts and double clicks;
- posts one message in the thread that pings the roles in DISCORD_HELPER_ROLE_IDS, with allowed
  mentions limited to exactly those roles (the only ping the bot ever sends);
- applies the forum tag named DISCORD_NEEDS_HUMAN_TAG to the post, when the forum has it;
- turns the button into a disabled "Helpers notified", and the bot stays quiet in the thread.
Later clicks get a private "already asked".
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord

from bot.chat.texts import (
    ESCALATED,
    ESCALATED_ALREADY,
    ESCALATION_OFF,
    HELPERS_NOTIFIED_LABEL,
    NEEDS_HUMAN_LABEL,
)
from bot.discord.interactions import reply_privately

if TYPE_CHECKING:
    from bot.discord.adapter import DocsBot

log = logging.getLogger("docsbot.discord")


class NeedsHumanButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"docsbot:human:(?P<answer_id>[0-9A-Za-z]{1,64})",
):
    """The "Needs a human" button of one answer (the answer id rides in its custom_id)."""

    def __init__(self, answer_id: str, *, asked: bool = False) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.primary,
                emoji="🙋",
                label=HELPERS_NOTIFIED_LABEL if asked else NEEDS_HUMAN_LABEL,
                custom_id=f"docsbot:human:{answer_id}",
                disabled=asked,
            )
        )
        self.answer_id = answer_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> NeedsHumanButton:
        return cls(match["answer_id"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await escalate(interaction, self.answer_id)


async def escalate(interaction: discord.Interaction[DocsBot], answer_id: str) -> None:
    """Hand the thread of `interaction` to the helpers (see the module docstring)."""
    bot = interaction.client
    helpers = bot.help_channels.helper_roles
    thread = interaction.channel
    if not helpers or not isinstance(thread, discord.Thread):
        await reply_privately(interaction, ESCALATION_OFF)
        return
    first = await bot.core.escalate(
        answer_id, "discord", str(thread.parent_id), str(thread.id), str(interaction.user.id)
    )
    bot.help_channels.quiet(thread.id)
    if not first:
        await reply_privately(interaction, ESCALATED_ALREADY)
        return
    try:  # the answer's buttons now say the helpers were asked
        await interaction.response.edit_message(view=_asked(interaction.message))
    except discord.HTTPException as exc:
        log.warning("could not update the answer's buttons: %s", exc)
    roles = [discord.Object(int(role)) for role in sorted(helpers)]
    people = " ".join(f"<@&{role.id}>" for role in roles)
    only_helpers = discord.AllowedMentions(everyone=False, users=False, roles=roles, replied_user=False)
    text = ESCALATED.format(people=people, asker=interaction.user.mention)
    try:
        await thread.send(text, allowed_mentions=only_helpers)
    except discord.HTTPException as exc:  # recorded all the same: `docsbot report` shows it
        log.error("could not ping the helpers in thread %s: %s", thread.id, exc)
    await _tag(thread, bot.core.settings.discord_needs_human_tag)


def _asked(message: discord.Message | None) -> discord.ui.View | None:
    """The answer's buttons with "Needs a human" turned into a disabled "Helpers notified"."""
    if message is None:
        return None
    view = discord.ui.View.from_message(message, timeout=None)
    for item in view.children:
        if isinstance(item, discord.ui.Button) and (item.custom_id or "").startswith("docsbot:human:"):
            item.label, item.disabled = HELPERS_NOTIFIED_LABEL, True
    return view


async def _tag(thread: discord.Thread, name: str) -> None:
    """Apply the forum tag called `name` (any case) to a forum post, when its forum has one."""
    forum = thread.parent
    if not name.strip() or not isinstance(forum, discord.ForumChannel):
        return
    wanted = name.strip().casefold()
    tag = next((t for t in forum.available_tags if t.name.casefold() == wanted), None)
    if tag is None:
        log.info("forum %s has no tag named %r; post %s left untagged", forum.id, name, thread.id)
        return
    try:
        await thread.add_tags(tag, reason="a member asked for a human")
    except discord.HTTPException as exc:  # e.g. missing Manage Threads: the ping went out anyway
        log.warning("could not tag forum post %s with %r: %s", thread.id, tag.name, exc)
