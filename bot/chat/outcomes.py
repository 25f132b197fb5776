"""Which answers carry the feedback (👍/👎) and "still need help?" buttons: one rule for both chats.

Real answers, declines ("the docs don't cover that") and answers cut short by an error are worth
rating and escalating; usage help, small talk, refusals and "the LLM is busy" are not.
"""

from __future__ import annotations

from core.models import Outcome

VOTABLE_OUTCOMES = frozenset({Outcome.ANSWERED, Outcome.NOT_COVERED, Outcome.ERROR})


def is_votable(outcome: str) -> bool:
    """Whether an answer with this outcome gets feedback and escalation buttons."""
    return outcome in VOTABLE_OUTCOMES
