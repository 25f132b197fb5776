"""👎 asks why: a modal with the reasons and a text box; the reason is stored with the vote."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.chat.texts import FEEDBACK_UNKNOWN, WHY_REASONS, WHY_THANKS
from core.report import build_report, format_text

from .helpers import QUESTION, Bot, answered, buttons, member


async def test_thumbs_down_asks_why_and_stores_the_reason_with_the_vote(bot: Bot) -> None:
    discord, bob = bot.discord, member("bob")
    await discord.send_message(QUESTION, author=member())
    await discord.wait_until(answered(discord))
    (answer,) = discord.bot_messages()
    _up, down = buttons(answer)

    click = await discord.click(down, answer, author=bob)
    await discord.wait_until(lambda: click["id"] in discord.modals)
    modal = discord.modals[click["id"]]
    (reason, details) = (label["component"] for label in modal["components"])
    assert [o["value"] for o in reason["options"]] == list(WHY_REASONS)
    assert details["type"] == 4 and details["required"] is False
    (record,) = bot.records.questions()
    assert record.downvotes == 1 and record.reasons == ()  # the vote counts before any reason

    submitted = await discord.submit_modal(
        click["id"], {"reason": ["outdated"], "details": "The index API changed in 2.6"}, author=bob
    )
    await discord.wait_until(lambda: bool(discord.rest("POST", rf"/interactions/{submitted['id']}/.+")))
    (callback,) = discord.rest("POST", rf"/interactions/{submitted['id']}/.+")
    assert callback.body["type"] == 4 and callback.body["data"]["flags"] == 64
    assert callback.body["data"]["content"] == WHY_THANKS
    (record,) = bot.records.questions()
    assert record.reasons == (("outdated", "The index API changed in 2.6"),)
    assert record.votes == -1 and record.downvotes == 1  # still one vote, now with its reason
    report = format_text(build_report(bot.records.questions(), None, since=datetime.fromtimestamp(0, UTC)))
    assert "thumbs-down reasons: outdated" in report


async def test_thumbs_down_on_an_answer_no_longer_on_record_opens_no_dialog(bot: Bot) -> None:
    discord = bot.discord
    await discord.send_message(QUESTION, author=member())
    await discord.wait_until(answered(discord))
    (answer,) = discord.bot_messages()
    (record,) = bot.records.questions()
    stale = json.loads(json.dumps(answer).replace(record.answer_id, "0" * 16))  # never stored
    click = await discord.click(buttons(stale)[1], stale, author=member("bob"))
    await discord.wait_until(lambda: bool(discord.rest("POST", rf"/interactions/{click['id']}/.+")))
    (callback,) = discord.rest("POST", rf"/interactions/{click['id']}/.+")
    assert callback.body["type"] == 4 and callback.body["data"]["content"] == FEEDBACK_UNKNOWN
    assert not discord.modals
