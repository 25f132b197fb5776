"""The LLM names the docs' own terms for a question, and those are searched too.

Users ask in their own words: "air-gapped", "everything within distance X", "a list of strings".
The docs say "offline", "range search", "ARRAY field", and the small English embedding model does
not bridge every such gap. When an LLM is configured and the retrieval gate lets a question
through, the LLM writes one line of the Milvus features, parameters and terms the documentation
would use for it ("range search, radius, range_filter"; `RagService.retrieve`). Retrieval
searches that line too (dense and BM25) and fuses the four lists
(`core.retrieval.Retriever.search`). The first `KEEP_PAGES` pages of the question's own search
stay in front: the terms only decide the places after them, because a small model's terms are
noisy and the question's own best match is usually right (see the README's numbers).

The retrieval gate still judges the question's own search: it was fitted on those signals.

Expansion is best effort: without an LLM, or when it fails or is slow (`EXPAND_TIMEOUT`), the
question alone is searched, as before.
"""

from __future__ import annotations

import logging

from core.generation import ChatLLM, side_reply
from core.prompting import message_task, without_message_tags

log = logging.getLogger(__name__)

EXPANDER_PROMPT = """You help search the Milvus documentation. The user sends a chat message inside
<message> tags. Reply with one line: the Milvus features, parameters and terms that the
documentation uses for what the message asks about, comma-separated, at most 15 words. Use the
documentation's own words, not the user's. Never answer the question."""

# Worked examples, so that small models reply with terms instead of an answer.
_EXAMPLES = (
    (
        "how do I stop old rows from piling up forever? they should just go away after a month",
        "collection TTL, collection.ttl.seconds, expired entities, delete entities, compaction",
    ),
    (
        "can two customers share one collection without seeing each other's data?",
        "multi-tenancy, partition key, partitions, filtering by tenant, RBAC privileges",
    ),
    (
        "wie viele replicas brauche ich für mehr lesedurchsatz?",
        "in-memory replicas, replica_number, load collection, query node, read throughput",
    ),
)
#: Words (and characters) of the reply kept as search terms; a longer reply is an answer, cut
#: to its start.
MAX_WORDS, MAX_CHARS = 25, 300
#: Pages of the question's own search that keep their places in front of the expanded search's.
KEEP_PAGES = 2


def expansion_messages(text: str) -> list[dict[str, str]]:
    return message_task(EXPANDER_PROMPT, _EXAMPLES, text)


def usable_terms(reply: str) -> str | None:
    """The reply's first non-empty line, without markup, at most `MAX_WORDS` words and
    `MAX_CHARS` characters; None when nothing is left."""
    lines = (" ".join(without_message_tags(line).split()) for line in reply.splitlines())
    first = next((line for line in lines if line), "")
    return " ".join(first.split()[:MAX_WORDS])[:MAX_CHARS].strip() or None


async def docs_terms(llm: ChatLLM, text: str, seconds: float) -> str | None:
    """The docs' terms for `text`, to search as well, or None (see the module docstring)."""
    task = "query expansion (searching the question alone)"
    if (reply := await side_reply(llm, expansion_messages(text), seconds, task)) is None:
        return None
    terms = usable_terms(reply)
    log.info("also searching the docs' terms %r (asked: %r)", terms, text[:200])
    return terms
