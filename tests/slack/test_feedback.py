"""Auto-reply channels, who gets a reply in a thread, "Still need help?" and the 👎 dialog,
against the fake Slack API."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.chat.texts import ESCALATED_ALREADY, WHY_THANKS
from core.report import build_report

from ..fakes.slack_api import TEAM_ID
from .conftest import QUESTION, Bot, Start


def message_event(
    bot: Bot, text: str, *, channel: str = "CHELP", user: str = "U1", **extra: Any
) -> dict[str, Any]:
    ts = bot.slack.new_ts()
    bot.slack.add_message(channel, ts, user, text, extra.get("thread_ts"))
    return {
        "type": "message",
        "channel_type": "channel",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        **extra,
    }


async def interaction(bot: Bot, payload: dict[str, Any]) -> int:
    payload = {"team": {"id": TEAM_ID}, "api_app_id": "A1", "token": "legacy", **payload}
    status, _ = await bot.post(
        urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
    )
    return status


async def click(bot: Bot, action_id: str, answer: dict[str, Any], *, user: str, trigger: str = "T1") -> int:
    """A click on a button of an answer message (its channel, ts and thread)."""
    return await interaction(
        bot,
        {
            "type": "block_actions",
            "user": {"id": user},
            "channel": {"id": answer["channel"]},
            "container": {
                "type": "message",
                "channel_id": answer["channel"],
                "message_ts": answer["ts"],
                "thread_ts": answer["thread_ts"],
            },
            "message": {"ts": answer["ts"], "thread_ts": answer["thread_ts"]},
            "response_url": bot.slack.response_url(f"click-{user}"),
            "trigger_id": trigger,
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "feedback",
                    "value": answer["answer_id"],
                    "action_ts": "1",
                }
            ],
        },
    )


async def answered_in_thread(bot: Bot, count: int = 1) -> list[dict[str, Any]]:
    """The final answers (native streams stopped), as channel/ts/thread/answer id."""
    await bot.slack.wait_for(lambda: len(bot.slack.calls_to("chat.stopStream")) >= count, 15.0)
    answers = []
    for call in bot.slack.calls_to("chat.stopStream"):
        message = bot.slack.messages[(call.args["channel"], call.args["ts"])]
        actions = [b for b in message.get("blocks", []) if b["type"] == "actions"]
        answer_id = actions[0]["elements"][0]["value"] if actions else ""
        answers.append(
            {
                "channel": call.args["channel"],
                "ts": call.args["ts"],
                "thread_ts": message["thread_ts"],
                "answer_id": answer_id,
                "message": message,
            }
        )
    return answers


async def settle(bot: Bot, seconds: float = 1.5) -> None:
    """Give the adapter time to (not) act on something."""
    await asyncio.sleep(seconds)


# --- auto-reply channels ------------------------------------------------------------------------


async def test_auto_reply_channel_answers_questions_in_thread_and_ignores_chatter(start: Start) -> None:
    bot = await start(slack_streaming="native", slack_auto_reply_channels="CHELP")
    for chatter in ("thanks, that fixed it!", "good morning all", "I upgraded to 2.5 yesterday"):
        assert await bot.event(message_event(bot, chatter)) == 200
    await bot.event(message_event(bot, "how do I pick M for HNSW?", channel="COTHER"))  # not listed
    await bot.event(message_event(bot, "is HNSW better for recall?", user="UBOT2", bot_id="B2"))  # a bot
    await settle(bot)
    assert not bot.slack.calls_to("assistant.threads.setStatus") and not bot.llm.requests

    question = message_event(bot, "what does M control in an HNSW index")  # no "?" but "what"
    await bot.event(question)
    [answer] = await answered_in_thread(bot)
    assert answer["channel"] == "CHELP" and answer["thread_ts"] == question["ts"]
    assert "maximum number of edges" in answer["message"]["text"]
    assert len(bot.llm.requests) == 1


async def test_auto_reply_thread_follow_ups_are_answered_too(start: Start) -> None:
    bot = await start(slack_streaming="native", slack_auto_reply_channels="CHELP")
    question = message_event(bot, "How do I pick M for HNSW?")
    await bot.event(question)
    await answered_in_thread(bot)
    await bot.event(message_event(bot, "and its default?", thread_ts=question["ts"]))
    [_, second] = await answered_in_thread(bot, 2)
    assert second["thread_ts"] == question["ts"]


async def test_questions_with_a_file_attached_are_answered(start: Start) -> None:
    bot = await start(slack_streaming="native", slack_auto_reply_channels="CHELP")
    files = {"subtype": "file_share", "files": [{"id": "F1", "name": "error.png"}]}
    question = message_event(bot, "why does my search fail like this?", **files)
    await bot.event(question)
    await answered_in_thread(bot)
    follow_up = message_event(bot, "here is the log, what does it mean?", thread_ts=question["ts"], **files)
    await bot.event(follow_up)
    [first, second] = await answered_in_thread(bot, 2)
    assert first["thread_ts"] == second["thread_ts"] == question["ts"]
    assert "here is the log" in json.dumps(bot.llm.requests[1]["messages"])


# --- who gets a reply in a thread ---------------------------------------------------------------


async def test_in_a_thread_only_the_askers_questions_get_a_reply_without_a_mention(start: Start) -> None:
    bot = await start(slack_streaming="native")
    mention = bot.mention(QUESTION)
    await bot.event(mention)
    await answered_in_thread(bot)
    calls = len(bot.slack.calls)

    in_thread = {"channel": "C1", "thread_ts": mention["ts"]}
    await bot.event(message_event(bot, "<@U1> I think you need IVF_PQ", user="U2", **in_thread))
    await bot.event(message_event(bot, "what about IVF_PQ?", user="U2", **in_thread))  # not the asker
    await bot.event(message_event(bot, "thanks!", **in_thread))  # the asker, asking nothing
    await bot.event(message_event(bot, "<@U2> good idea, trying it now", **in_thread))
    await settle(bot)
    assert [c.method for c in bot.slack.calls[calls:] if c.method != "auth.test"] == []
    assert len(bot.llm.requests) == 1

    await bot.event(bot.mention(QUESTION, user="U2", thread_ts=mention["ts"]))  # a mention: anyone
    await bot.event(message_event(bot, "what is the default value of M in HNSW?", **in_thread))  # the asker
    answers = await answered_in_thread(bot, 3)
    assert {answer["thread_ts"] for answer in answers} == {mention["ts"]}
    assert len(bot.llm.requests) == 3


async def test_a_follow_up_written_while_the_answer_streams_is_answered_too(start: Start) -> None:
    bot = await start(slack_streaming="native")
    bot.llm.token_delay = 0.1  # about 3 s of streaming
    mention = bot.mention(QUESTION)
    await bot.event(mention)
    await bot.slack.wait_for(lambda: bool(bot.slack.calls_to("chat.startStream")))
    assert not bot.slack.calls_to("chat.stopStream")  # still streaming
    follow_up = message_event(bot, "and what is its default?", channel="C1", thread_ts=mention["ts"])
    await bot.event(follow_up)
    answers = await answered_in_thread(bot, 2)
    assert {answer["thread_ts"] for answer in answers} == {mention["ts"]}
    assert len(bot.llm.requests) == 2


# --- "Still need help?" -------------------------------------------------------------------------


async def test_still_need_help_pings_the_group_once_and_the_bot_leaves_the_thread(start: Start) -> None:
    bot = await start(slack_streaming="native", slack_escalation_usergroup="SHELPERS")
    mention = bot.mention(QUESTION)
    await bot.event(mention)
    [answer] = await answered_in_thread(bot)

    assert await click(bot, "escalate", answer, user="U1") == 200
    await bot.slack.wait_for(lambda: bool(bot.slack.calls_to("chat.postMessage")))
    [ping] = bot.slack.calls_to("chat.postMessage")
    assert ping.args["thread_ts"] == mention["ts"] and ping.args["channel"] == "C1"
    assert ping.args["text"].startswith("<!subteam^SHELPERS>")
    assert ping.args["text"].count("<") == 1  # the group is the only mention

    await click(bot, "escalate", answer, user="U2")  # a second click: no second ping
    await bot.slack.wait_for(lambda: bool(bot.slack.calls_to("chat.postEphemeral")))
    assert bot.slack.calls_to("chat.postEphemeral")[-1].args["text"] == ESCALATED_ALREADY
    assert len(bot.slack.calls_to("chat.postMessage")) == 1

    requests = len(bot.llm.requests)
    await bot.event(message_event(bot, "still broken, any idea?", channel="C1", thread_ts=mention["ts"]))
    await bot.event(bot.mention("what about efConstruction?", thread_ts=mention["ts"]))
    await settle(bot)
    assert len(bot.llm.requests) == requests  # the bot stays out of that thread
    assert len(bot.slack.calls_to("chat.stopStream")) == 1

    [record] = bot.core.records.questions()
    assert record.escalated
    assert build_report(bot.core.records.questions(), None, since=record.asked_at).escalations == 1


async def test_still_need_help_pings_the_group_even_when_the_click_cannot_be_recorded(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = await start(slack_streaming="native", slack_escalation_usergroup="SHELPERS")
    await bot.event(bot.mention(QUESTION))
    [answer] = await answered_in_thread(bot)

    async def locked(*args: object) -> bool:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(bot.core.records, "arecord_escalation", locked)
    assert await click(bot, "escalate", answer, user="U1") == 200
    await bot.slack.wait_for(lambda: bool(bot.slack.calls_to("chat.postMessage")))
    [ping] = bot.slack.calls_to("chat.postMessage")
    assert ping.args["text"].startswith("<!subteam^SHELPERS>")
    assert not bot.slack.calls_to("chat.postEphemeral")  # nobody is told "already asked"


async def test_no_escalation_button_without_a_user_group(start: Start) -> None:
    bot = await start(slack_streaming="native")
    await bot.event(bot.mention(QUESTION))
    [answer] = await answered_in_thread(bot)
    actions = next(b for b in answer["message"]["blocks"] if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == ["feedback_up", "feedback_down"]


# --- 👎 asks why --------------------------------------------------------------------------------


async def test_thumbs_down_opens_a_dialog_and_its_reason_is_stored_with_the_vote(start: Start) -> None:
    bot = await start(slack_streaming="native")
    await bot.event(bot.mention(QUESTION))
    [answer] = await answered_in_thread(bot)

    assert await click(bot, "feedback_down", answer, user="U3", trigger="T42") == 200
    await bot.slack.wait_for(lambda: bool(bot.slack.views))
    [open_call] = bot.slack.calls_to("views.open")
    assert open_call.args["trigger_id"] == "T42"
    [view] = bot.slack.views
    reasons = [o["value"] for o in view["blocks"][0]["element"]["options"]]
    assert reasons == ["wrong", "outdated", "not_what_i_asked", "other"]
    await bot.slack.wait_for(lambda: bot.core.records.feedback(answer["answer_id"]) == {"U3": -1})
    assert not bot.slack.responses  # the dialog is the acknowledgement

    submitted = {
        **view,
        "state": {
            "values": {
                "reason": {"reason": {"type": "radio_buttons", "selected_option": {"value": "outdated"}}},
                "details": {"details": {"type": "plain_text_input", "value": "that flag was renamed"}},
            }
        },
    }
    assert await interaction(bot, {"type": "view_submission", "user": {"id": "U3"}, "view": submitted}) == 200
    await bot.slack.wait_for(lambda: bool(bot.slack.calls_to("chat.postEphemeral")))
    [thanks] = bot.slack.calls_to("chat.postEphemeral")
    assert thanks.args["text"] == WHY_THANKS and thanks.args["user"] == "U3"
    [record] = bot.core.records.questions()
    assert record.reasons == (("outdated", "that flag was renamed"),) and record.downvotes == 1


async def test_dialog_without_a_reason_is_refused_and_nothing_is_stored(start: Start) -> None:
    bot = await start(slack_streaming="native")
    await bot.event(bot.mention(QUESTION))
    [answer] = await answered_in_thread(bot)
    await click(bot, "feedback_down", answer, user="U3")
    await bot.slack.wait_for(lambda: bool(bot.slack.views))
    empty = {**bot.slack.views[0], "state": {"values": {}}}
    status, body = await bot.post(
        urlencode(
            {
                "payload": json.dumps(
                    {"type": "view_submission", "team": {"id": TEAM_ID}, "user": {"id": "U3"}, "view": empty}
                )
            }
        ).encode(),
        "application/x-www-form-urlencoded",
    )
    assert status == 200 and json.loads(body)["response_action"] == "errors"
    await settle(bot, 0.5)
    assert bot.core.records.questions()[0].reasons == ()
