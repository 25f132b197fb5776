"""The Discord adapter: mentions, replies, `/ask`, `/reindex`, the feedback buttons, splitting.

The real discord.py client against a fake Discord API and gateway (see `helpers.py`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bot.chat.texts import ERROR_SENTENCE, FEEDBACK_THANKS, FEEDBACK_UNKNOWN
from bot.discord.reindex import REFUSAL
from bot.discord.render import no_previews, preview, split_message
from core.embedding import SentenceTransformerEmbedder
from core.errors import IndexEmptyError
from core.service import USAGE, RagService, open_service

from ..conftest import make_settings
from ..fakes.discord_api import MANAGE_GUILD, FakeDiscord, snowflake
from ..fakes.llm_server import FakeLLM
from .helpers import (
    ANSWER,
    QUESTION,
    Bot,
    answered,
    bare_links,
    buttons,
    closed_port,
    member,
    no_pings,
    running_bot,
)


async def test_mention_streams_a_reply_then_ends_with_links_and_buttons(bot: Bot) -> None:
    discord = bot.discord
    bot.llm.answer = " ".join(["HNSW's M sets the maximum number of edges per node [1]."] * 6)
    bot.llm.token_delay = 0.03
    asked = await discord.send_message(QUESTION, author=member())
    await discord.wait_until(answered(discord))

    assert discord.rest("POST", rf"/channels/{discord.channel_id}/typing")
    posts = discord.rest("POST", rf"/channels/{discord.channel_id}/messages")
    assert len(posts) == 1
    assert str(posts[0].body["message_reference"]["message_id"]) == asked["id"]
    edits = discord.rest("PATCH", rf"/channels/{discord.channel_id}/messages/\d+")
    assert len(edits) >= 2  # at least one streaming edit, and the final one
    final = edits[-1].body
    assert final["content"].startswith("HNSW's M sets the maximum number of edges per node [1].")
    assert "milvus.io/docs/hnsw.md" in final["embeds"][0]["description"]
    (record,) = bot.records.questions()
    assert buttons(final) == [f"docsbot:vote:up:{record.answer_id}", f"docsbot:vote:down:{record.answer_id}"]
    assert record.adapter == "discord" and record.outcome == "answered" and record.question == QUESTION
    # what the client asked for at start-up
    assert discord.identify is not None
    intents = discord.identify["intents"]
    assert intents == (1 << 0) | (1 << 9) | (1 << 12) | (1 << 15)  # guilds, messages, DMs, content
    assert {"ask", "reindex"} <= set(discord.commands)
    assert int(discord.commands["reindex"]["default_member_permissions"]) == MANAGE_GUILD


async def test_reply_to_an_answer_is_a_follow_up_with_the_conversation_as_history(bot: Bot) -> None:
    discord, alice = bot.discord, member()
    await discord.send_message(QUESTION, author=alice)
    await discord.wait_until(answered(discord))
    (answer,) = discord.bot_messages()
    bot.llm.answer = "Its default is 16 [1]."
    follow_up = await discord.send_message(
        "and what's its default value?", author=alice, mention=False, reply_to=answer
    )
    await discord.wait_until(answered(discord, 2))

    asked = bot.llm.requests[1]["messages"][-1]["content"]  # the conversation, fenced as data
    assert f'<turn from="asker">\n{QUESTION}' in asked
    assert f'<turn from="assistant">\n{answer["content"]}' in asked
    assert "and what's its default value?" in asked
    reply = discord.bot_messages()[-1]
    assert reply["message_reference"]["message_id"] == follow_up["id"]
    assert reply["content"].startswith("Its default is 16 [1].")
    # a reply to someone else's message, without a mention, is not for the bot
    await discord.send_message("thanks!", author=member("bob"), mention=False, reply_to=follow_up)
    await asyncio.sleep(0.3)
    assert len(bot.llm.requests) == 2 and len(discord.bot_messages()) == 2


async def test_ask_defers_at_once_then_streams_into_the_response_with_a_slow_llm(bot: Bot) -> None:
    discord = bot.discord
    bot.llm.delay = 3.2  # longer than Discord's 3-second window to acknowledge
    bot.llm.token_delay = 0.02
    bot.llm.answer = " ".join(["HNSW's M sets the maximum number of edges per node [1]."] * 4)
    started = asyncio.get_running_loop().time()
    interaction = await discord.command("ask", {"question": QUESTION}, author=member())
    token = interaction["token"]
    await discord.wait_until(lambda: any(buttons(m) for m in discord.bot_messages()), timeout=15)

    (callback,) = discord.rest("POST", rf"/interactions/{interaction['id']}/{token}/callback")
    assert callback.body["type"] == 5  # deferred: "docsbot is thinking…"
    assert callback.at - started < 1.0
    edits = discord.rest("PATCH", rf"/webhooks/{discord.app_id}/{token}/messages/@original")
    assert len(edits) >= 2 and edits[-1].at - started > 3.0
    final = edits[-1].body
    assert final["content"].startswith("HNSW's M sets the maximum")
    assert "milvus.io/docs/hnsw.md" in final["embeds"][0]["description"]
    assert buttons(final)[0].startswith("docsbot:vote:up:")
    assert all(no_pings(edit.body) for edit in edits)


async def test_ask_works_in_dms_when_allowed(bot: Bot) -> None:
    discord = bot.discord
    interaction = await discord.command("ask", {"question": QUESTION}, author=member(), dm=True)
    token = interaction["token"]
    dm = interaction["channel_id"]
    await discord.wait_until(lambda: any(buttons(m) for m in discord.bot_messages(dm)))
    (callback,) = discord.rest("POST", rf"/interactions/{interaction['id']}/{token}/callback")
    assert callback.body["type"] == 5
    final = discord.rest("PATCH", rf"/webhooks/{discord.app_id}/{token}/messages/@original")[-1].body
    assert final["content"].startswith("HNSW's M sets the maximum number of edges per node [1].")
    assert discord.commands["ask"]["contexts"] == [0, 1]  # guilds and the bot's DMs


async def test_reindex_is_refused_to_members_and_runs_for_admins(
    indexed_service: RagService, fake_discord: FakeDiscord, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    discord = fake_discord
    async with running_bot(
        indexed_service, discord, fake_llm, tmp_path, discord_admin_role_ids=discord.admin_role_id
    ) as bot:
        # a member without an admin role: ephemeral refusal, nothing starts
        refused = await discord.command("reindex", author=member("mallory"))
        await discord.wait_until(lambda: bool(discord.rest("POST", rf"/interactions/{refused['id']}/.+")))
        (callback,) = discord.rest("POST", rf"/interactions/{refused['id']}/.+")
        assert callback.body["type"] == 4
        assert callback.body["data"]["content"] == REFUSAL and callback.body["data"]["flags"] == 64
        assert bot.core.service.running_reindex is None

        # a member with the admin role: progress in one message, then the run's summary
        admin = await discord.command("reindex", author=member("carol"), roles=[discord.admin_role_id])
        token = admin["token"]

        def finished() -> bool:
            edits = discord.rest("PATCH", rf"/webhooks/{discord.app_id}/{token}/messages/@original")
            return any(e.body["content"].startswith("Reindex finished.") for e in edits)

        await discord.wait_until(finished, timeout=30)
        (callback,) = discord.rest("POST", rf"/interactions/{admin['id']}/.+")
        assert callback.body["type"] == 5
        edits = discord.rest("PATCH", rf"/webhooks/{discord.app_id}/{token}/messages/@original")
        assert edits[0].body["content"].startswith("Reindexing the Milvus docs.")
        assert "unchanged" in edits[-1].body["content"]
        run = bot.core.service.last_run()
        assert run is not None and run.trigger == f"discord:{admin['member']['user']['id']}"

        # status is private, for admins too
        status = await discord.command(
            "reindex", {"action": "status"}, author=member(), roles=[discord.admin_role_id]
        )
        await discord.wait_until(lambda: bool(discord.rest("POST", rf"/interactions/{status['id']}/.+")))
        (callback,) = discord.rest("POST", rf"/interactions/{status['id']}/.+")
        assert callback.body["data"]["flags"] == 64
        assert callback.body["data"]["content"].startswith("Last reindex (")


async def test_everyone_in_model_output_does_not_ping(bot: Bot) -> None:
    discord = bot.discord
    bot.llm.answer = "@everyone @here <@&123> listen: M is the maximum number of edges per node [1]."
    bot.llm.token_delay = 0.02
    await discord.send_message(QUESTION, author=member())
    await discord.wait_until(answered(discord))
    (answer,) = discord.bot_messages()
    assert answer["content"].startswith("@\u200beveryone @\u200bhere")  # defused in core, and:
    sent = discord.rest("POST", r"/channels/\d+/messages") + discord.rest(
        "PATCH", r"/channels/\d+/messages/\d+"
    )
    assert len(sent) >= 2 and all(no_pings(call.body) for call in sent)


async def test_long_answers_are_split_without_breaking_code_blocks(bot: Bot) -> None:
    discord = bot.discord
    code = "\n".join(
        f"hits_{i} = client.search(collection_name='docs', data=query, limit={i})" for i in range(60)
    )
    bot.llm.answer = f"Search with the client [1].\n\n```python\n{code}\n```\n\nThat is all."
    await discord.send_message(QUESTION, author=member())
    await discord.wait_until(answered(discord))

    parts = discord.bot_messages()
    assert len(parts) >= 3
    assert all(len(p["content"]) <= 2000 and p["content"].count("```") % 2 == 0 for p in parts)
    text = "\n".join(p["content"] for p in parts)
    assert all(text.count(f"hits_{i} = ") == 1 for i in range(60))
    assert parts[0]["content"].startswith("Search with the client [1].")
    assert parts[-1]["content"].endswith("That is all.")
    assert all(p["content"].startswith("```python") for p in parts[1:-1])
    for previous, part in itertools.pairwise(parts):  # each part replies to the one before
        assert part["message_reference"]["message_id"] == previous["id"]
    assert parts[-1]["embeds"] and buttons(parts[-1]) and not any(p["components"] for p in parts[:-1])


@pytest.mark.parametrize(
    "text",
    [
        "\n\n".join(f"Paragraph {i}. " + "word " * 150 for i in range(8)),
        "Intro.\n\n~~~js\n" + "\n".join(f"const x{i} = {i};" for i in range(400)) + "\n~~~\n\nDone.",
        "Unclosed:\n\n```\n" + "\n".join("y = 1" for _ in range(600)),
        "x" * 4500,
    ],
    ids=["paragraphs", "tilde-fence", "unclosed-fence", "one-long-word"],
)
def test_split_message_keeps_parts_short_and_fences_balanced(text: str) -> None:
    parts = split_message(text)
    assert len(parts) >= 2
    for part in parts:
        assert 0 < len(part) <= 2000
        assert sum(1 for line in part.split("\n") if line.lstrip().startswith(("```", "~~~"))) % 2 == 0
    assert "".join(parts).replace("\n", "").replace(" ", "").count("x") >= text.count("x")


def test_one_line_triple_backtick_code_opens_no_code_block() -> None:
    inline = "```pip install pymilvus``` then run it."
    text = f"Install it:\n{inline}\n\nThen connect."
    assert split_message(text) == [text] and preview(text) == text
    long = f"{inline}\n\n" + "\n\n".join(f"Paragraph {i}. " + "word " * 150 for i in range(6))
    parts = split_message(long)
    assert len(parts) >= 2 and parts[0].startswith(inline)
    assert all(part.count("```") % 2 == 0 for part in parts)  # no fence added, none reopened
    assert "".join(parts).count("```") == 2


async def test_users_asking_too_fast_are_told_to_wait_once_per_flood(
    indexed_service: RagService,
    fake_discord: FakeDiscord,
    fake_llm: FakeLLM,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    discord, alice = fake_discord, member()
    async with running_bot(indexed_service, discord, fake_llm, tmp_path, user_rate_limit=2):
        with caplog.at_level(logging.INFO, logger="docsbot.chat"):
            for _ in range(6):
                await discord.send_message(QUESTION, author=alice)
            await discord.wait_until(
                lambda: sum("rate limited" in r.getMessage() for r in caplog.records) == 4
            )
        await discord.wait_until(answered(discord, 2))
        await asyncio.sleep(0.3)
        refusals = [m for m in discord.bot_messages() if m["content"].startswith("You're asking faster")]
        assert len(refusals) == 1 and "2 questions a minute" in refusals[0]["content"]
        assert len(discord.bot_messages()) == 3 and len(fake_llm.requests) == 2
        # someone else is not limited by alice
        await discord.send_message(QUESTION, author=member("bob"))
        await discord.wait_until(answered(discord, 3))


async def test_a_mention_of_the_bots_managed_role_is_a_mention(bot: Bot) -> None:
    discord, role = bot.discord, bot.discord.bot_role_id  # Discord's autocomplete often inserts it
    await discord.send_message(f"<@&{role}> {QUESTION}", author=member(), mention=False, role_mentions=[role])
    await discord.wait_until(answered(discord))
    (record,) = bot.records.questions()
    assert record.question == QUESTION


async def test_empty_and_oversized_mentions_get_usage_help(bot: Bot) -> None:
    discord = bot.discord
    await discord.send_message("", author=member())
    await discord.send_message("x" * 2500, author=member("bob"))
    await discord.wait_until(lambda: len(discord.bot_messages()) == 2)
    contents = sorted(m["content"] for m in discord.bot_messages())
    assert contents[0] == USAGE
    assert contents[1].startswith("That message is too long for me (2500 characters")
    assert bot.llm.requests == []


async def test_llm_down_gives_one_honest_sentence_and_links(
    indexed_service: RagService, fake_discord: FakeDiscord, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    discord = fake_discord
    down = f"http://127.0.0.1:{closed_port()}/v1"
    async with running_bot(indexed_service, discord, fake_llm, tmp_path, llm_url=down):
        await discord.send_message(QUESTION, author=member())
        await discord.wait_until(lambda: any(m["embeds"] for m in discord.bot_messages()))
    (answer,) = discord.bot_messages()
    assert answer["content"].startswith("I couldn't reach the language model just now.")
    assert "Traceback" not in answer["content"] and "Connect" not in answer["content"]
    assert "milvus.io/docs/hnsw.md" in answer["embeds"][0]["description"]


async def test_feedback_click_is_stored_even_after_a_restart(
    indexed_service: RagService, fake_discord: FakeDiscord, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    discord = fake_discord
    async with running_bot(indexed_service, discord, fake_llm, tmp_path):
        await discord.send_message(QUESTION, author=member())
        await discord.wait_until(answered(discord))
    (answer,) = discord.bot_messages()
    _up, down = buttons(answer)
    async with running_bot(indexed_service, discord, fake_llm, tmp_path) as bot:  # a new process, same store
        click = await discord.click(down, answer, author=member("bob"))
        await discord.wait_until(lambda: bool(discord.rest("POST", rf"/interactions/{click['id']}/.+")))
        (callback,) = discord.rest("POST", rf"/interactions/{click['id']}/.+")
        assert callback.body["type"] == 9  # the vote is stored, then the "why?" dialog opens
        (record,) = bot.records.questions()
        assert record.votes == -1 and record.downvotes == 1
        up = await discord.click(_up, answer, author=member("carol"))
        await discord.wait_until(lambda: bool(discord.rest("POST", rf"/interactions/{up['id']}/.+")))
        (callback,) = discord.rest("POST", rf"/interactions/{up['id']}/.+")
        assert callback.body["type"] == 4 and callback.body["data"]["flags"] == 64
        assert callback.body["data"]["content"] == FEEDBACK_THANKS[1]
        (record,) = bot.records.questions()
        assert record.votes == 0 and record.downvotes == 1
        stale = json.loads(
            json.dumps(answer).replace(record.answer_id, "0" * 16)
        )  # an answer we never stored
        unknown = await discord.click(buttons(stale)[0], stale, author=member())
        await discord.wait_until(lambda: bool(discord.rest("POST", rf"/interactions/{unknown['id']}/.+")))
        (callback,) = discord.rest("POST", rf"/interactions/{unknown['id']}/.+")
        assert callback.body["data"]["content"] == FEEDBACK_UNKNOWN


async def test_expired_interaction_is_logged_not_raised(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    discord = bot.discord
    expired = snowflake()
    discord.expired.add(expired)
    with caplog.at_level(logging.WARNING, logger="docsbot.discord"):
        interaction = await discord.command(
            "ask", {"question": QUESTION}, author=member(), interaction_id=expired
        )
        await discord.wait_until(lambda: bool(discord.rest("POST", rf"/interactions/{expired}/.+")))
        await asyncio.sleep(0.3)
    assert any("expired before it was acknowledged" in r.getMessage() for r in caplog.records)
    assert not discord.rest("POST", rf"/webhooks/\d+/{interaction['token']}")
    assert bot.llm.requests == []
    # the bot is fine: the next question is answered
    await discord.send_message(QUESTION, author=member())
    await discord.wait_until(answered(discord))


async def test_failures_are_answered_with_one_honest_sentence(bot: Bot) -> None:
    discord = bot.discord
    discord.fail.append(r"PATCH /webhooks/\d+/[^/]+/messages/@original")
    interaction = await discord.command("ask", {"question": QUESTION}, author=member())
    token = interaction["token"]
    await discord.wait_until(lambda: bool(discord.rest("POST", rf"/webhooks/\d+/{token}")))
    (followup,) = discord.rest("POST", rf"/webhooks/\d+/{token}")
    assert followup.body["content"] == ERROR_SENTENCE and followup.body["flags"] == 64

    discord.fail.append(r"PATCH /channels/\d+/messages/\d+")
    asked = await discord.send_message(QUESTION, author=member("bob"))

    def sorry() -> list[dict[str, Any]]:
        return [
            m
            for m in discord.bot_messages()
            if m.get("message_reference", {}).get("message_id") == asked["id"]
            and m["content"] == ERROR_SENTENCE
        ]

    await discord.wait_until(lambda: bool(sorry()))
    assert len(sorry()) == 1


async def test_reply_in_thread_opens_a_thread_and_follows_up_there(
    indexed_service: RagService, fake_discord: FakeDiscord, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    discord, alice = fake_discord, member()
    async with running_bot(indexed_service, discord, fake_llm, tmp_path, discord_reply_in_thread=True):
        asked = await discord.send_message(QUESTION, author=alice)
        await discord.wait_until(answered(discord))
        (thread_call,) = discord.rest(
            "POST", rf"/channels/{discord.channel_id}/messages/{asked['id']}/threads"
        )
        assert thread_call.body["name"] == QUESTION
        thread = asked["id"]
        (answer,) = discord.bot_messages(thread)
        assert not discord.bot_messages()  # nothing in the channel itself

        fake_llm.answer = "Its default is 16 [1]."
        await discord.send_message("and its default?", author=alice, mention=False, channel_id=thread)
        await discord.wait_until(answered(discord, 2))
        asked = fake_llm.requests[1]["messages"][-1]["content"]
        assert f'<turn from="asker">\n{QUESTION}' in asked
        assert f'<turn from="assistant">\n{answer["content"]}' in asked
        assert len(discord.bot_messages(thread)) == 2


async def test_in_the_bots_thread_only_the_askers_questions_get_a_reply_without_a_mention(
    indexed_service: RagService, fake_discord: FakeDiscord, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    discord, alice, bob = fake_discord, member("alice"), member("bob")
    async with running_bot(indexed_service, discord, fake_llm, tmp_path, discord_reply_in_thread=True):
        thread = (await discord.send_message(QUESTION, author=alice))["id"]
        await discord.wait_until(answered(discord))
        for text, author in [
            (f"<@{alice['id']}> I think you need IVF_PQ", bob),
            ("what about IVF_PQ?", bob),  # not the asker
            ("thanks!", alice),  # the asker, asking nothing
            (f"<@{bob['id']}> good idea, trying it now", alice),
        ]:
            await discord.send_message(text, author=author, mention=False, channel_id=thread)
        await asyncio.sleep(0.5)
        assert len(fake_llm.requests) == 1 and len(discord.bot_messages(thread)) == 1

        await discord.send_message(QUESTION, author=bob, channel_id=thread)  # a mention: anyone
        await discord.wait_until(answered(discord, 2))
        await discord.send_message("and its default?", author=alice, mention=False, channel_id=thread)
        await discord.wait_until(answered(discord, 3))
        assert len(discord.bot_messages(thread)) == 3


async def test_a_thread_the_bot_may_not_open_becomes_a_plain_reply(
    indexed_service: RagService,
    fake_discord: FakeDiscord,
    fake_llm: FakeLLM,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    discord = fake_discord
    discord.forbid.append(r"POST /channels/\d+/messages/\d+/threads")  # no Create Public Threads
    async with running_bot(indexed_service, discord, fake_llm, tmp_path, discord_reply_in_thread=True):
        with caplog.at_level(logging.WARNING, logger="docsbot.discord"):
            asked = await discord.send_message(QUESTION, author=member())
            await discord.wait_until(answered(discord))
    (answer,) = discord.bot_messages()
    assert answer["message_reference"]["message_id"] == asked["id"] and answer["content"].startswith(ANSWER)
    assert any("could not open a thread" in r.getMessage() for r in caplog.records)


async def test_a_question_before_anything_is_indexed_gets_a_sentence_for_chat_users(
    embedder: SentenceTransformerEmbedder, fake_discord: FakeDiscord, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, collection="nothing_indexed")
    async with (
        open_service(settings, embedder=embedder, generation=False) as empty,
        running_bot(empty, fake_discord, fake_llm, tmp_path),
    ):
        await fake_discord.send_message(QUESTION, author=member())
        await fake_discord.wait_until(answered(fake_discord))
    (answer,) = fake_discord.bot_messages()
    assert answer["content"] == IndexEmptyError.user_message and "docsbot index" not in answer["content"]


async def test_a_dm_needs_no_mention(bot: Bot) -> None:
    discord = bot.discord
    dm_channel = snowflake()
    asked = await discord.send_message(
        QUESTION, author=member(), mention=False, dm=True, channel_id=dm_channel
    )
    await discord.wait_until(answered(discord))
    (answer,) = discord.bot_messages(dm_channel)
    assert answer["message_reference"]["message_id"] == asked["id"]
    assert answer["content"].startswith("HNSW's M sets the maximum number of edges per node [1].")


async def test_endpoints_follow_the_context_of_the_client_that_uses_them() -> None:
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    from bot.discord.endpoints import DISCORD_API, discord_endpoints

    async def base_seen_by_a_task() -> str:
        return Route("GET", "/users/@me").url

    with discord_endpoints("http://127.0.0.1:1/api/v10/", "ws://127.0.0.1:1/gateway"):
        assert Route("GET", "/gateway").url == "http://127.0.0.1:1/api/v10/gateway"
        assert str(DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:1/gateway"
        inside = asyncio.create_task(base_seen_by_a_task())  # tasks inherit the context
    outside = asyncio.create_task(base_seen_by_a_task())
    assert await inside == "http://127.0.0.1:1/api/v10/users/@me"
    assert await outside == f"{DISCORD_API}/users/@me"
    assert str(DiscordWebSocket.DEFAULT_GATEWAY) == "wss://gateway.discord.gg/"


async def test_weekly_report_is_posted_to_the_report_channel_without_pings(bot: Bot) -> None:
    from bot.serve import post_weekly_report
    from core.models import Answer

    bot.core.settings = bot.core.settings.model_copy(
        update={"report_channel": f"discord:{bot.discord.channel_id}"}
    )
    await bot.core.record(
        "discord",
        "1",
        "2",
        "can I run it on podman @everyone?",
        Answer("no", "not_covered"),
        channel_kind="public",  # reports quote only public questions
    )
    await post_weekly_report(bot.core, [bot.adapter])
    [call] = bot.discord.rest("POST", rf"/channels/{bot.discord.channel_id}/messages")
    assert call.body["content"].startswith("```\ndocsbot: the last 7 days")
    assert "podman" in call.body["content"] and no_pings(call.body)


async def test_answers_carry_no_link_previews(bot: Bot) -> None:
    discord = bot.discord
    bot.llm.answer = (
        "See https://milvus.io/docs/hnsw.md and "
        "[the HNSW page](https://milvus.io/docs/hnsw.md#Index-params) [1]."
    )
    bot.llm.token_delay = 0.02
    await discord.send_message(QUESTION, author=member())
    interaction = await discord.command("ask", {"question": QUESTION}, author=member("bob"))
    await discord.wait_until(answered(discord, 2))

    sent = [
        call.body["content"]
        for call in discord.rest("POST", r"/channels/\d+/messages")
        + discord.rest("PATCH", r"/channels/\d+/messages/\d+")
        + discord.rest("PATCH", rf"/webhooks/\d+/{interaction['token']}/messages/@original")
        if call.body.get("content")
    ]
    assert len(sent) >= 4 and not [text for text in sent if bare_links(text)]
    for final in (discord.bot_messages()[0]["content"], sent[-1]):
        assert "See <https://milvus.io/docs/hnsw.md> and" in final
        assert "[the HNSW page](<https://milvus.io/docs/hnsw.md#Index-params>)" in final
    assert discord.bot_messages()[0]["embeds"]  # the sources embed stays


def test_no_previews_brackets_links_but_leaves_code_alone() -> None:
    text = (
        "Read https://milvus.io/docs/a.md, then (https://milvus.io/docs/b.md).\n"
        "Already <https://milvus.io/docs/c.md> and [d](<https://milvus.io/docs/d.md>).\n"
        "`curl https://localhost:19530/v2` and\n```bash\ncurl https://localhost:19530/v2/vectordb\n```"
    )
    assert no_previews(text) == (
        "Read <https://milvus.io/docs/a.md>, then (<https://milvus.io/docs/b.md>).\n"
        "Already <https://milvus.io/docs/c.md> and [d](<https://milvus.io/docs/d.md>).\n"
        "`curl https://localhost:19530/v2` and\n```bash\ncurl https://localhost:19530/v2/vectordb\n```"
    )
    assert not bare_links(no_previews(text))


async def test_a_message_delivered_twice_is_answered_once(bot: Bot) -> None:
    discord = bot.discord
    asked = await discord.send_message(QUESTION, author=member())
    await discord.dispatch("MESSAGE_CREATE", asked)  # as after a gateway resume
    await discord.wait_until(answered(discord))
    await asyncio.sleep(0.4)
    assert len(bot.llm.requests) == 1 and len(discord.bot_messages()) == 1
