"""Native streaming on Slack: loading status, chat.startStream/appendStream/stopStream with the
sources and buttons, and the edit path for workspaces that refuse streaming (remembered per team)."""

from __future__ import annotations

import itertools
from typing import Any

from bot.chat.texts import SEARCHING
from bot.slack.reply import PLACEHOLDER

from ..fakes.slack_api import BOT_USER_ID, TEAM_ID
from .conftest import QUESTION, Bot, Start

STREAM_CALLS = ("chat.startStream", "chat.appendStream", "chat.stopStream")


def stream_calls(bot: Bot) -> list[str]:
    return [c.method for c in bot.slack.calls if c.method in (*STREAM_CALLS, "assistant.threads.setStatus")]


def stream_text(args: dict[str, Any]) -> str:
    chunks = args.get("chunks") or []
    return str(args.get("markdown_text") or "") + "".join(str(chunk.get("text", "")) for chunk in chunks)


async def stopped(bot: Bot, count: int = 1) -> None:
    await bot.slack.wait_for(lambda: len(bot.slack.calls_to("chat.stopStream")) >= count, 15.0)


async def test_answer_streams_natively_after_a_loading_status_and_ends_with_sources_and_buttons(
    start: Start,
) -> None:
    bot = await start(slack_streaming="native", slack_escalation_usergroup="SHELPERS")
    bot.llm.token_delay = 0.05  # ~27 words: about 1.4 s of streaming
    mention = bot.mention(QUESTION)
    await bot.event(mention)
    await stopped(bot)

    calls = stream_calls(bot)
    assert calls[0] == "assistant.threads.setStatus" and calls[1] == "chat.startStream"
    assert calls[-1] == "chat.stopStream" and calls.count("chat.startStream") == 1
    assert calls.count("chat.appendStream") >= 2, calls
    [status] = bot.slack.calls_to("assistant.threads.setStatus")
    assert status.args == {"channel_id": "C1", "thread_ts": mention["ts"], "status": SEARCHING}
    [begin] = bot.slack.calls_to("chat.startStream")
    assert begin.args["thread_ts"] == mention["ts"] and begin.args["channel"] == "C1"
    assert begin.args["recipient_user_id"] == "U1" and begin.args["recipient_team_id"] == TEAM_ID
    appends = bot.slack.calls_to("chat.appendStream")
    gaps = [b.at - a.at for a, b in itertools.pairwise([begin, *appends])]
    assert min(gaps) >= 0.15, gaps  # throttled (STREAM_EDIT_INTERVAL 0.2 s)
    assert not bot.slack.calls_to("chat.postMessage") and not bot.slack.calls_to("chat.update")

    [stop] = bot.slack.calls_to("chat.stopStream")
    message = bot.slack.messages[("C1", stop.args["ts"])]
    assert message["text"].startswith("The **M** parameter sets the maximum number of edges")
    assert message["text"].endswith("see `efConstruction` too [1].")  # the whole answer, once
    assert message["thread_ts"] == mention["ts"] and not message["streaming"]
    context, actions = message["blocks"]
    assert context["type"] == "context"
    assert "<https://milvus.io/docs/hnsw.md" in context["elements"][0]["text"]
    assert [e["action_id"] for e in actions["elements"]] == ["feedback_up", "feedback_down", "escalate"]
    answer_id = actions["elements"][0]["value"]
    [record] = bot.core.records.questions()
    assert record.answer_id == answer_id and record.channel_kind == "public"


async def test_a_workspace_that_refuses_streaming_gets_edits_and_is_remembered(start: Start) -> None:
    bot = await start(slack_streaming="native")
    bot.slack.streaming_error = "unknown_method"  # an old workspace: no setStatus, no streams
    await bot.event(bot.mention(QUESTION))
    [final] = await bot.answered(1)
    placeholder = bot.slack.calls_to("chat.postMessage")[0]
    assert placeholder.args["text"] == PLACEHOLDER
    assert "maximum number of edges" in final["blocks"][0]["text"]["text"]
    assert [a["action_id"] for a in final["blocks"][-1]["elements"]] == ["feedback_up", "feedback_down"]

    tried = len(bot.slack.calls_to("assistant.threads.setStatus"))
    await bot.event(bot.mention("and what is efConstruction?", user="U2"))
    await bot.answered(2)
    assert len(bot.slack.calls_to("assistant.threads.setStatus")) == tried  # not asked again
    assert not bot.slack.calls_to("chat.startStream")


async def test_streaming_refused_at_start_stream_falls_back_only_for_that_team(start: Start) -> None:
    bot = await start(slack_streaming="native")
    bot.slack.streaming_error = "not_allowed"
    bot.slack.streaming_refused_teams = {"TOTHER"}  # an Enterprise policy in one workspace
    other = bot.mention(QUESTION)
    other["team"] = "TOTHER"
    await bot.event(other)
    [final] = await bot.answered(1)  # the edit path: placeholder, then the final blocks
    assert "maximum number of edges" in final["blocks"][0]["text"]["text"]
    [refused] = bot.slack.calls_to("chat.startStream")
    assert refused.args["recipient_team_id"] == "TOTHER"

    home = bot.mention("what is efConstruction?", user="U2")
    await bot.event(home)  # the app's own team still streams
    await stopped(bot)
    assert len(bot.slack.calls_to("chat.startStream")) == 2

    await bot.event({**bot.mention("what is HNSW?", user="U3"), "team": "TOTHER"})
    await bot.answered(2)
    assert len(bot.slack.calls_to("chat.startStream")) == 2  # TOTHER is remembered


async def test_a_declined_question_ends_the_stream_with_the_decline_and_its_links(start: Start) -> None:
    bot = await start(slack_streaming="native")
    await bot.event(bot.mention("does milvus run on podman?"))
    await stopped(bot)
    [begin] = bot.slack.calls_to("chat.startStream")
    [stop] = bot.slack.calls_to("chat.stopStream")
    message = bot.slack.messages[("C1", stop.args["ts"])]
    assert message["text"] and message["text"] == bot.core.records.questions()[0].answer
    assert begin.at <= stop.at and not bot.slack.calls_to("chat.appendStream")


async def test_model_markup_in_a_stream_cannot_mention_anyone(start: Start) -> None:
    bot = await start(slack_streaming="native")
    bot.llm.answer = "Ping <!channel> and <@U999> and @here: M sets the edges per node [1]."
    await bot.event(bot.mention(QUESTION))
    await stopped(bot)
    streamed = "".join(stream_text(c.args) for c in bot.slack.calls if c.method in STREAM_CALLS)
    assert "edges per node" in streamed
    for live in ("<!channel>", "<@U999>", "@here"):
        assert live not in streamed
    assert f"<@{BOT_USER_ID}>" not in streamed


async def test_a_failed_append_loses_no_text(start: Start) -> None:
    bot = await start(slack_streaming="native")
    bot.llm.token_delay = 0.05
    bot.slack.faults["chat.appendStream"] = [(200, {})]  # the first append fails (not retried)
    await bot.event(bot.mention(QUESTION))
    await stopped(bot)
    [stop] = bot.slack.calls_to("chat.stopStream")
    text = bot.slack.messages[("C1", stop.args["ts"])]["text"]
    assert text == bot.core.records.questions()[0].answer  # every word, once


async def test_a_stream_that_cannot_be_stopped_is_replaced_by_the_final_message(start: Start) -> None:
    bot = await start(slack_streaming="native")
    bot.slack.faults["chat.stopStream"] = [(200, {})]
    await bot.event(bot.mention(QUESTION))
    [final] = await bot.answered(1)  # chat.update of the streamed message with the final blocks
    [begin] = bot.slack.calls_to("chat.startStream")
    assert final["channel"] == "C1" and "maximum number of edges" in final["blocks"][0]["text"]["text"]
    assert bot.slack.messages[("C1", final["ts"])]["thread_ts"] == begin.args["thread_ts"]
