"""The Slack adapter end to end: the real bolt `AsyncApp` (HTTP mode with signed requests, and
Socket Mode over a websocket), the real RagService over the fixture index, and fakes only at
the network edge: Slack's Web API / response URLs / Socket Mode server, and the LLM server."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time

import pytest
import yaml
from pydantic import SecretStr

from bot.chat.texts import DMS_OFF, FORCE_NOT_ADMIN, NOT_ADMIN
from bot.slack.adapter import PLACEHOLDER
from bot.slack.render import (
    MAX_BLOCKS,
    SECTION_LIMIT,
    answer_messages,
    slack_to_plain,
    split_mrkdwn,
    to_mrkdwn,
)
from core.errors import ConfigError
from core.models import Answer, Source
from core.service import USAGE

from ..fakes.slack_api import BOT_ID, BOT_USER_ID, TEAM_ID
from .conftest import ADMIN, MANIFEST, QUESTION, SECRET, Start, closed_port, event_body

# --- HTTP mode: signatures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "timestamp_offset", "secret"),
    [("wrong secret", 0, "not-the-secret"), ("stale timestamp", -600, SECRET)],
)
async def test_wrong_or_stale_signature_is_rejected_with_401(
    start: Start, case: str, timestamp_offset: int, secret: str
) -> None:
    bot = await start()
    body = json.dumps(event_body(bot.mention(QUESTION), "EvBad")).encode()
    status, _ = await bot.post(
        body, "application/json", timestamp=int(time.time()) + timestamp_offset, secret=secret
    )
    assert status == 401, case
    good = await bot.event(bot.mention(QUESTION))
    assert good == 200
    await bot.answered(1)
    assert len(bot.slack.calls_to("chat.postMessage")) == 1  # only the correctly signed one


async def test_url_verification_is_answered(start: Start) -> None:
    bot = await start()
    body = json.dumps({"type": "url_verification", "challenge": "abc123", "token": "legacy"}).encode()
    status, text = await bot.post(body, "application/json")
    assert status == 200 and "abc123" in text


# --- mentions ---------------------------------------------------------------------------------


async def test_mention_posts_placeholder_streams_edits_then_final_blocks_with_links(start: Start) -> None:
    bot = await start()
    bot.llm.token_delay = 0.06  # ~27 words: about 1.6 s of streaming
    mention = bot.mention(QUESTION)
    assert await bot.event(mention) == 200
    [final] = await bot.answered(1)

    [placeholder] = bot.slack.calls_to("chat.postMessage")
    assert placeholder.args["thread_ts"] == mention["ts"] and placeholder.args["text"] == PLACEHOLDER
    assert placeholder.args["unfurl_links"] is False
    updates = bot.slack.calls_to("chat.update")
    streamed = [call for call in updates if not call.args.get("blocks")]
    assert len(streamed) >= 3, [call.args for call in updates]
    assert all(call.args["text"].endswith("▍") for call in streamed)
    lengths = [len(call.args["text"]) for call in streamed]
    assert lengths == sorted(lengths)  # the text grows
    gaps = [b.at - a.at for a, b in itertools.pairwise(streamed)]
    assert min(gaps) >= 0.15, gaps  # throttled (STREAM_EDIT_INTERVAL 0.2 s)
    assert updates[-1].args is final and len({call.args["ts"] for call in updates}) == 1  # one message

    blocks = final["blocks"]
    assert blocks[0]["type"] == "section"
    assert "*M* parameter" in blocks[0]["text"]["text"] and "`efConstruction`" in blocks[0]["text"]["text"]
    [context] = [b for b in blocks if b["type"] == "context"]
    assert context["elements"][0]["text"].startswith("<https://milvus.io/docs/hnsw.md")
    [actions] = [b for b in blocks if b["type"] == "actions"]
    [record] = bot.core.records.questions()
    assert {e["value"] for e in actions["elements"]} == {record.answer_id}
    assert record.adapter == "slack" and record.user_id == "U1" and record.question == QUESTION
    assert record.outcome == "answered"


async def test_thread_reply_is_a_follow_up_with_the_thread_as_history(start: Start) -> None:
    bot = await start()
    mention = bot.mention(QUESTION)
    await bot.event(mention)
    await bot.answered(1)
    bot.llm.answer = "Its default is 16 [1]."

    ts = bot.slack.new_ts()
    follow_up = {
        "type": "message",
        "channel": "C1",
        "channel_type": "channel",
        "user": "U1",
        "text": "and what is its default?",
        "ts": ts,
        "thread_ts": mention["ts"],
    }
    bot.slack.add_message("C1", ts, "U1", follow_up["text"], mention["ts"])
    await bot.event(follow_up)
    second = (await bot.answered(2))[1]
    assert "default is 16" in second["blocks"][0]["text"]["text"]
    assert bot.slack.calls_to("chat.postMessage")[1].args["thread_ts"] == mention["ts"]
    assert bot.slack.calls_to("conversations.replies")[0].args["ts"] == mention["ts"]

    prompt = bot.llm.requests[1]["messages"][-1]["content"]  # the thread is data inside the prompt
    conversation = prompt[prompt.index("<conversation>") : prompt.index("</conversation>")]
    assert QUESTION in conversation and "maximum number of edges" in conversation
    assert "and what is its default?" in prompt


async def test_a_follow_up_in_a_long_thread_reads_its_latest_messages(start: Start) -> None:
    """Slack returns a thread oldest first, a page at a time: the turns just before the follow-up
    are on the last page."""
    bot = await start()
    mention = bot.mention(QUESTION)
    await bot.event(mention)
    await bot.answered(1)
    for n in range(450):
        text = f"what does M control in an HNSW index, note {n}?"
        bot.slack.add_message("C1", bot.slack.new_ts(), "U1", text, mention["ts"])
    ts = bot.slack.new_ts()
    follow_up = {"type": "message", "channel": "C1", "channel_type": "channel", "user": "U1"}
    follow_up |= {"text": "and what is its default?", "ts": ts, "thread_ts": mention["ts"]}
    bot.slack.add_message("C1", ts, "U1", follow_up["text"], mention["ts"])
    await bot.event(follow_up)
    await bot.answered(2)

    assert len(bot.slack.calls_to("conversations.replies")) == 3  # 452 messages, 200 a page
    prompt = bot.llm.requests[1]["messages"][-1]["content"]
    conversation = prompt[prompt.index("<conversation>") : prompt.index("</conversation>")]
    assert "note 449?" in conversation and "note 5?" not in conversation


async def test_a_message_in_the_bots_messages_tab_is_answered_in_its_thread(start: Start) -> None:
    bot = await start()
    ts = bot.slack.new_ts()
    dm = {"type": "message", "channel": "D1", "channel_type": "im", "user": "U1", "ts": ts}
    dm["text"] = f"<@{BOT_USER_ID}> {QUESTION}"  # a mention in a DM comes as a message event only
    assert await bot.event(dm) == 200
    [final] = await bot.answered(1)
    assert "*M* parameter" in final["blocks"][0]["text"]["text"]
    assert bot.slack.calls_to("chat.postMessage")[0].args["thread_ts"] == ts
    [record] = bot.core.records.questions()
    assert record.channel_kind == "dm" and record.question == QUESTION


async def test_with_dms_off_a_dm_gets_a_pointer_to_the_channels(start: Start) -> None:
    bot = await start(slack_allow_dms=False)
    dm = {"type": "message", "channel": "D1", "channel_type": "im", "user": "U1", "text": QUESTION}
    dm["ts"] = bot.slack.new_ts()
    assert await bot.event(dm) == 200
    await bot.slack.wait_for(lambda: bot.slack.calls_to("chat.postEphemeral"))
    [told] = bot.slack.calls_to("chat.postEphemeral")
    assert told.args["text"] == DMS_OFF and told.args["user"] == "U1"
    assert bot.llm.requests == [] and not bot.slack.calls_to("chat.postMessage")


async def test_thread_messages_elsewhere_and_bot_messages_are_ignored(start: Start) -> None:
    bot = await start()
    other_thread = {"type": "message", "channel": "C1", "user": "U1", "text": "hm", "ts": bot.slack.new_ts()}
    other_thread["thread_ts"] = "1.000001"  # a thread the bot never answered in
    from_bot = bot.mention(QUESTION) | {"bot_id": "BOTHER", "user": "UOTHER"}
    own = bot.mention(QUESTION) | {"user": BOT_USER_ID, "bot_id": BOT_ID}
    for event in (other_thread, from_bot, own):
        assert await bot.event(event) == 200
    await asyncio.sleep(0.5)
    assert bot.llm.requests == []
    assert [c.method for c in bot.slack.calls if c.method != "auth.test"] == []


async def test_duplicate_delivery_is_answered_once(start: Start) -> None:
    bot = await start()
    mention = bot.mention(QUESTION)
    assert await bot.event(mention, event_id="EvSame") == 200
    assert await bot.event(mention, event_id="EvSame", headers={"X-Slack-Retry-Num": "1"}) == 200
    # The same message again under another event id (Slack sends app_mention and message).
    as_message = mention | {"type": "message"}
    assert await bot.event(as_message, event_id="EvOther") == 200
    await bot.answered(1)
    await asyncio.sleep(0.5)
    assert len(bot.slack.calls_to("chat.postMessage")) == 1
    assert len(bot.llm.requests) == 1
    assert len(bot.core.records.questions()) == 1


async def test_empty_or_too_long_mention_gets_usage_help(start: Start) -> None:
    bot = await start(max_question_chars=100)
    await bot.event(bot.mention(""))
    await bot.event(bot.mention("x" * 150))
    await bot.slack.wait_for(lambda: len(bot.slack.calls_to("chat.postEphemeral")) == 2)
    usage, too_long = (call.args for call in bot.slack.calls_to("chat.postEphemeral"))
    assert usage["text"] == USAGE and usage["user"] == "U1"
    assert "too long" in too_long["text"] and "limit is 100" in too_long["text"]
    assert bot.llm.requests == [] and bot.slack.calls_to("chat.postMessage") == []


async def test_per_user_rate_limit_gets_a_friendly_message(start: Start) -> None:
    bot = await start(user_rate_limit=2)
    for _ in range(3):
        await bot.event(bot.mention(QUESTION))
    await bot.event(bot.mention(QUESTION, user="U9"))  # someone else is not limited
    await bot.answered(3)
    await bot.slack.wait_for(lambda: bool(bot.slack.calls_to("chat.postEphemeral")))
    [limited] = bot.slack.calls_to("chat.postEphemeral")
    assert limited.args["user"] == "U1" and "faster than I can keep up" in limited.args["text"]
    assert "Traceback" not in limited.args["text"]
    assert len(bot.slack.calls_to("chat.postMessage")) == 3


async def test_slack_429_is_retried_after_retry_after(start: Start) -> None:
    bot = await start()
    bot.slack.faults["chat.postMessage"] = [(429, {"Retry-After": "1"})]
    await bot.event(bot.mention(QUESTION))
    await bot.answered(1)
    first, second = bot.slack.calls_to("chat.postMessage")
    assert second.at - first.at >= 1.0
    assert len(bot.core.records.questions()) == 1


async def test_llm_down_gives_one_honest_sentence_with_links(start: Start) -> None:
    bot = await start(llm_url=f"http://127.0.0.1:{closed_port()}/v1")
    await bot.event(bot.mention(QUESTION))
    [final] = await bot.answered(1)
    text = final["blocks"][0]["text"]["text"]
    assert text.startswith("I couldn't reach the language model just now.")
    assert "Traceback" not in json.dumps(final) and "ClientConnectorError" not in json.dumps(final)
    assert any(b["type"] == "context" and "milvus.io/docs/hnsw.md" in json.dumps(b) for b in final["blocks"])


# --- /ask -------------------------------------------------------------------------------------


async def test_ask_acks_within_3_seconds_even_with_a_slow_llm(start: Start) -> None:
    bot = await start()
    bot.llm.delay = 3.5  # the first token comes after Slack's 3 s ack deadline
    started = time.perf_counter()
    status, _ = await bot.command("/ask", QUESTION)
    acked = time.perf_counter() - started
    assert status == 200 and acked < 1.0, acked
    [placeholder] = bot.slack.calls_to("chat.postMessage")
    assert placeholder.args["channel"] == "C1" and "thread_ts" not in placeholder.args
    assert "<@U1> asked: what does M control" in placeholder.args["text"]
    [final] = await bot.answered(1, within=20)
    assert time.perf_counter() - started >= 3.5
    assert (
        final["blocks"][0]["type"] == "context"
        and "<@U1> asked:" in final["blocks"][0]["elements"][0]["text"]
    )
    assert "edges per node" in final["blocks"][1]["text"]["text"]


async def test_empty_ask_shows_usage_only_to_the_asker(start: Start) -> None:
    bot = await start()
    status, _ = await bot.command("/ask", "   ")
    assert status == 200
    await bot.slack.wait_for(lambda: bool(bot.slack.responses))
    [(_, response)] = bot.slack.responses
    assert response["text"] == USAGE and response["response_type"] == "ephemeral"
    assert bot.llm.requests == []


async def test_ask_can_answer_ephemerally(start: Start) -> None:
    bot = await start(slack_ask_ephemeral=True)
    await bot.command("/ask", QUESTION)
    await bot.slack.wait_for(lambda: bool(bot.slack.responses))
    [(_, response)] = bot.slack.responses
    assert response["response_type"] == "ephemeral"
    assert "edges per node" in json.dumps(response["blocks"])
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_ask_in_a_channel_the_bot_is_not_in_answers_through_the_response_url(start: Start) -> None:
    bot = await start()
    bot.slack.not_in_channel.add("C2")
    await bot.command("/ask", QUESTION, channel="C2")
    await bot.slack.wait_for(lambda: bool(bot.slack.responses))
    [(_, response)] = bot.slack.responses
    assert response["response_type"] == "in_channel" and "edges per node" in json.dumps(response["blocks"])


# --- /reindex ---------------------------------------------------------------------------------


async def test_reindex_by_an_admin_edits_one_message_until_done(start: Start) -> None:
    bot = await start()
    status, _ = await bot.command("/reindex", "", user=ADMIN)
    assert status == 200
    await bot.slack.wait_for(
        lambda: any("finished" in c.args.get("text", "") for c in bot.slack.calls_to("chat.update")), 60
    )
    [posted] = bot.slack.calls_to("chat.postMessage")
    assert posted.args["text"].startswith(f":arrows_counterclockwise: Reindex started by <@{ADMIN}>")
    updates = bot.slack.calls_to("chat.update")
    ts = bot.slack.messages[("C1", max(ts for (_, ts) in bot.slack.messages))]["ts"]
    assert {call.args["ts"] for call in updates} == {ts}  # one message, edited
    assert updates[-1].args["text"].startswith(":white_check_mark: Reindex finished")
    assert "7 unchanged" in updates[-1].args["text"]

    await bot.command("/reindex", "status", user=ADMIN)
    await bot.slack.wait_for(lambda: bool(bot.slack.responses))
    [(_, status_reply)] = bot.slack.responses
    assert status_reply["response_type"] == "ephemeral"
    assert (
        status_reply["text"].startswith(":white_check_mark: Last reindex")
        and f"slack:{ADMIN}" in status_reply["text"]
    )


async def test_reindex_by_anyone_else_is_refused_politely_and_logged(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await start()
    with caplog.at_level(logging.WARNING, logger="docsbot.slack"):
        for text in ("", "force", "status"):
            status, _ = await bot.command("/reindex", text, user="U1")
            assert status == 200
        await bot.slack.wait_for(lambda: len(bot.slack.responses) == 3)
    assert {r["text"] for _, r in bot.slack.responses} == {NOT_ADMIN}
    assert NOT_ADMIN.startswith("Sorry, only the bot's admins can reindex")
    assert all(r["response_type"] == "ephemeral" for _, r in bot.slack.responses)
    assert bot.core.service.running_reindex is None and bot.core.service.last_run() is None
    assert bot.slack.calls_to("chat.postMessage") == []
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 3 and all("U1" in line for line in refused)


async def test_workspace_admins_may_reindex_when_allowed(start: Start) -> None:
    bot = await start(slack_workspace_admins_can_reindex=True)
    bot.slack.users["UWS"] = {"id": "UWS", "is_admin": True}
    assert await bot.adapter.is_admin("UWS")
    assert not await bot.adapter.is_admin("U1")
    assert await bot.adapter.is_admin(ADMIN)
    assert [c.args["user"] for c in bot.slack.calls_to("users.info")] == ["UWS", "U1"]


async def test_only_listed_admins_may_accept_deletions(start: Start) -> None:
    bot = await start(slack_workspace_admins_can_reindex=True)
    bot.slack.users["UWS"] = {"id": "UWS", "is_admin": True}
    await bot.command("/reindex", "force", user="UWS")  # a workspace admin, not listed
    await bot.slack.wait_for(lambda: bool(bot.slack.responses))
    [(_, refusal)] = bot.slack.responses
    assert refusal["text"] == FORCE_NOT_ADMIN and refusal["response_type"] == "ephemeral"
    assert bot.core.service.running_reindex is None and bot.core.service.last_run() is None

    await bot.command("/reindex", "force", user=ADMIN)  # a listed admin may
    await bot.slack.wait_for(
        lambda: any("finished" in c.args.get("text", "") for c in bot.slack.calls_to("chat.update")), 60
    )
    last = bot.core.service.last_run()
    assert last is not None and last.trigger == f"slack:{ADMIN}"


# --- feedback ---------------------------------------------------------------------------------


async def test_feedback_click_is_stored_and_acknowledged_without_the_dialog(start: Start) -> None:
    bot = await start()
    await bot.event(bot.mention(QUESTION))
    [final] = await bot.answered(1)
    answer_id = next(b for b in final["blocks"] if b["type"] == "actions")["elements"][0]["value"]

    assert await bot.click("feedback_up", answer_id, user="U2") == 200
    bot.slack.expired_triggers.add("trigger")  # the "why?" dialog can't open: thanks as before
    assert await bot.click("feedback_down", answer_id, user="U3") == 200
    await bot.slack.wait_for(lambda: len(bot.slack.responses) == 2)
    assert bot.core.records.feedback(answer_id) == {"U2": 1, "U3": -1}
    [record] = bot.core.records.questions()
    assert record.votes == 0 and record.downvotes == 1 and record.question == QUESTION
    assert record.sources and record.sources[0].startswith("https://milvus.io/docs/hnsw.md")
    texts = [r["text"] for _, r in bot.slack.responses]
    assert texts[0].startswith("Thanks! Glad") and texts[1].startswith("Thanks for telling me")
    assert all(
        r["response_type"] == "ephemeral" and r["replace_original"] is False for _, r in bot.slack.responses
    )

    await bot.click("feedback_up", "no-such-answer")
    await bot.slack.wait_for(lambda: len(bot.slack.responses) == 3)
    assert "wasn't stored" in bot.slack.responses[-1][1]["text"]


# --- Socket Mode ------------------------------------------------------------------------------


async def test_socket_mode_mention_and_command_are_acked_and_answered(start: Start) -> None:
    bot = await start(slack_mode="socket", slack_signing_secret=SecretStr(""))
    await bot.slack.wait_for(lambda: bot.slack.connected)
    assert {call.token for call in bot.slack.calls_to("apps.connections.open")} == {"xapp-test"}

    mention = bot.mention(QUESTION)
    await bot.slack.send_envelope(
        {
            "envelope_id": "env-1",
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
            "payload": event_body(mention, "EvSocket"),
        }
    )
    await bot.slack.wait_for(lambda: "env-1" in bot.slack.acks)
    [final] = await bot.answered(1)
    assert bot.slack.calls_to("chat.postMessage")[0].args["thread_ts"] == mention["ts"]
    assert "edges per node" in final["blocks"][0]["text"]["text"]

    sent = time.perf_counter()
    bot.llm.delay = 3.5
    await bot.slack.send_envelope(
        {
            "envelope_id": "env-2",
            "type": "slash_commands",
            "accepts_response_payload": True,
            "payload": {
                "command": "/ask",
                "text": QUESTION,
                "user_id": "U1",
                "channel_id": "C1",
                "team_id": TEAM_ID,
                "response_url": bot.slack.response_url("socket"),
                "trigger_id": "trigger",
            },
        }
    )
    await bot.slack.wait_for(lambda: "env-2" in bot.slack.acks)
    assert time.perf_counter() - sent < 1.0
    await bot.answered(2, within=20)

    # A redelivered envelope (Slack retries when the ack is late) is acked but not answered again.
    await bot.slack.send_envelope(
        {
            "envelope_id": "env-3",
            "type": "events_api",
            "retry_attempt": 1,
            "retry_reason": "timeout",
            "payload": event_body(mention, "EvSocket"),
        }
    )
    await bot.slack.wait_for(lambda: "env-3" in bot.slack.acks)
    await asyncio.sleep(0.3)
    assert len(bot.slack.calls_to("chat.postMessage")) == 2


# --- start-up ---------------------------------------------------------------------------------


async def test_a_rejected_bot_token_is_a_configuration_error(start: Start) -> None:
    with pytest.raises(ConfigError, match="Slack rejected SLACK_BOT_TOKEN"):
        await start(slack_bot_token=SecretStr("xoxp-user-token"))


async def test_a_rejected_app_token_is_a_configuration_error_not_an_endless_retry(start: Start) -> None:
    with pytest.raises(ConfigError, match=r"Slack rejected SLACK_APP_TOKEN \(not_allowed_token_type\)"):
        await start(slack_mode="socket", slack_app_token=SecretStr("xoxb-not-an-app-token"))


@pytest.mark.parametrize(
    ("mode", "missing", "setting"),
    [
        ("socket", "slack_app_token", "SLACK_APP_TOKEN"),
        ("http", "slack_signing_secret", "SLACK_SIGNING_SECRET"),
    ],
)
async def test_missing_mode_settings_fail_at_start(
    start: Start, mode: str, missing: str, setting: str
) -> None:
    with pytest.raises(ConfigError, match=setting):
        await start(slack_mode=mode, **{missing: SecretStr("")})


# --- rendering --------------------------------------------------------------------------------


def test_markdown_becomes_mrkdwn() -> None:
    markdown = (
        "## Index params\nUse **HNSW** with *M* and ~~IVF~~, see [the docs](https://milvus.io/docs/hnsw.md#M).\n"
        "- one\n* two\n1. three\n```python\nx = {'a': 1}  # a < b\n```\nand `code & more`"
    )
    assert to_mrkdwn(markdown) == (
        "*Index params*\nUse *HNSW* with _M_ and ~IVF~, see <https://milvus.io/docs/hnsw.md#M|the docs>.\n"
        "• one\n• two\n1. three\n```\nx = {'a': 1}  # a &lt; b\n```\nand `code &amp; more`"
    )


def test_one_line_triple_backtick_code_is_inline_code() -> None:
    assert to_mrkdwn("Install it: ```pip install pymilvus``` then run.") == (
        "Install it: `pip install pymilvus` then run."
    )
    assert to_mrkdwn("```pip install pymilvus``` then run:\n```bash\nmilvus <x>\n```") == (
        "`pip install pymilvus` then run:\n```\nmilvus &lt;x&gt;\n```"
    )


def test_model_output_cannot_ping_anyone() -> None:
    text = to_mrkdwn("Hey <!channel> and <!here|here>, <@U123> <!subteam^S1> look @here @channel @everyone")
    assert "<!" not in text and "<@" not in text
    assert "@here" not in text and "@channel" not in text and "@everyone" not in text
    link = to_mrkdwn("[click](https://x.test/a>|<!channel>)")
    assert "<!channel>" not in link


def test_user_text_is_read_as_plain_text() -> None:
    text = f"<@{BOT_USER_ID}>  what is &lt;M&gt; in <https://milvus.io/docs|the docs> for <@U2|ann>?"
    assert slack_to_plain(text, BOT_USER_ID) == "what is <M> in the docs for ann?"


def test_long_answers_split_within_slack_limits() -> None:
    paragraph = "Milvus " * 300
    code = "```\n" + "\n".join(f"line {i} " + "x" * 60 for i in range(200)) + "\n```"
    text = "\n\n".join([paragraph] * 60 + [code])
    sources = tuple(
        Source(n, f"Page {n}", f"Page {n} > Part", f"https://milvus.io/docs/p{n}.md#part")
        for n in range(1, 13)
    )
    messages = answer_messages(Answer(text=text, outcome="answered", sources=sources), "a1")
    assert len(messages) >= 2
    blocks = [block for message in messages for block in message]
    assert all(len(message) <= MAX_BLOCKS for message in messages)
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(s) <= SECTION_LIMIT for s in sections)
    assert all(s.count("```") % 2 == 0 for s in sections)  # a split code block is closed and reopened
    assert "".join(sections).count("Milvus") == 60 * 300
    contexts = [b for b in messages[-1] if b["type"] == "context"]
    assert [len(c["elements"]) for c in contexts] == [10, 2]
    assert messages[-1][-1]["type"] == "actions"
    assert split_mrkdwn("short") == ["short"]


@pytest.mark.parametrize(
    "line",
    [
        "word " * 585 + "[a label with spaces](https://milvus.io/docs/index.md) tail" * 3,
        "word " * 585 + "[a label with spaces](https://milvus.io/docs/index.md?a=1&b=2) " + "tail " * 100,
        "[a label](https://milvus.io/docs/index.md?a=1&b=2) " + "word " * 900,
        "a < b & c > d " * 400,
    ],
    ids=["label-at-the-cut", "raw-ampersand-at-the-cut", "raw-ampersand-first", "escapes"],
)
def test_long_lines_are_never_cut_inside_a_link_or_an_escape(line: str) -> None:
    pieces = split_mrkdwn(to_mrkdwn(line))
    assert len(pieces) >= 2
    for piece in pieces:
        assert len(piece) <= SECTION_LIMIT
        assert piece.count("<") == piece.count(">")  # every link whole
        prose = re.sub(r"<[^<>]*>", "", piece)
        assert prose.count("&") == len(re.findall(r"&(amp|lt|gt);", prose))  # every escape whole


def test_usage_help_has_no_feedback_buttons() -> None:
    [blocks] = answer_messages(Answer(text=USAGE, outcome="empty"), "a1")
    assert [b["type"] for b in blocks] == ["section"]


# --- the manifest -----------------------------------------------------------------------------


def test_manifest_declares_exactly_what_the_app_uses() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    features, oauth, settings = manifest["features"], manifest["oauth_config"], manifest["settings"]
    assert {c["command"] for c in features["slash_commands"]} == {"/ask", "/reindex"}
    assert set(settings["event_subscriptions"]["bot_events"]) == {
        "app_mention",
        "message.channels",
        "message.groups",
        "message.im",
    }
    assert set(oauth["scopes"]["bot"]) == {
        "app_mentions:read",
        "channels:history",
        "groups:history",
        "im:history",
        "chat:write",
        "commands",
        "channels:read",
        "groups:read",
        "im:read",
        "mpim:read",
        "users:read",
    }
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True
    assert features["bot_user"]["always_online"] is True
    assert features["app_home"]["messages_tab_enabled"] is True  # people can write to the bot


async def test_weekly_report_is_posted_to_the_report_channel(start: Start) -> None:
    from bot.serve import post_weekly_report

    bot = await start(report_channel="slack:CREPORTS")
    for question in ("does milvus run on podman?", "how do I use milvus with podman"):
        answer = Answer("not covered", "not_covered")
        await bot.core.record("slack", "C1", "U1", question, answer, channel_kind="public")
    await post_weekly_report(bot.core, [bot.adapter])
    [call] = bot.slack.calls_to("chat.postMessage")
    assert call.args["channel"] == "CREPORTS" and call.args["text"].startswith("```docsbot: the last 7 days")
    assert "questions: 2" in call.args["text"] and "2 x does milvus run on podman?" in call.args["text"]
