"""The tests for messages without a mention: questions get an answer, thanks and chatter don't."""

from __future__ import annotations

import pytest

from bot.chat.questions import looks_like_question, wants_an_answer


@pytest.mark.parametrize(
    "text",
    [
        "how do I choose nlist for IVF_FLAT?",
        "What is the max dimension of a vector field",
        "why does my search return fewer than topk results",
        "Can Milvus run on ARM",
        "does delete free disk space right away",
        "is there a limit on partitions per collection",
        "should I use HNSW or DiskANN for 100M vectors",
        "hi all, which index supports range search",
        "my insert fails with 'collection not loaded', any idea?",
        "When will the index be built",
        "where are the logs of a standalone deployment",
    ],
)
def test_questions_are_recognised(text: str) -> None:
    assert looks_like_question(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "thanks!",
        "thank you?",
        "ok",
        "lol",
        "great, that worked",
        "I upgraded to 2.5 yesterday",
        "FYI the docs site is slow today",
        "see `search?limit=10` in the logs",  # a question mark in code is no question
        "deployed it: https://example.com/a?b=c",
        "hello",
    ],
)
def test_chatter_is_not_a_question(text: str) -> None:
    assert not looks_like_question(text)


@pytest.mark.parametrize(
    "text",
    [
        "and its default?",
        "it still fails with 'collection not loaded'",
        "I tried nlist=1024 and recall dropped",
        "thanks! and how do I set nprobe?",
        "ok, what about DiskANN?",
        "如何创建索引",  # a question in another language
    ],
)
def test_follow_ups_that_ask_or_tell_something_want_an_answer(text: str) -> None:
    assert wants_an_answer(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "thanks!",
        "thank you so much",
        "thanks, that worked!",
        "ok got it",
        "great, that fixed it",
        "👍",
        "🙏",
        "hi there",
        "@alice I think you need IVF_PQ",  # words for someone else (Slack, as plain text)
        "<@123456> good idea",  # the same on Discord
    ],
)
def test_thanks_greetings_and_words_for_others_want_no_answer(text: str) -> None:
    assert not wants_an_answer(text)
