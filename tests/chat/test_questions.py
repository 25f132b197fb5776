"""The auto-reply test: questions get an answer, thanks and chatter don't."""

from __future__ import annotations

import pytest

from bot.chat.questions import looks_like_question


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
