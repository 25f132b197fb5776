"""The chats' in-memory maps are bounded: a flood of users or events costs bounded memory."""

from __future__ import annotations

import time

from bot.chat.limits import RateLimiter, Seen
from bot.chat.outcomes import is_votable
from core.models import Outcome


def test_rate_limiter_counts_per_user_and_says_how_long_to_wait() -> None:
    limiter = RateLimiter(per_minute=2)
    assert limiter.retry_after("U1") == 0
    assert limiter.retry_after("U1") == 0
    assert 59 < limiter.retry_after("U1") <= 60
    assert limiter.retry_after("U2") == 0  # another user is not affected


def test_rate_limiter_forgets_the_least_recent_users_past_its_cap() -> None:
    limiter = RateLimiter(per_minute=1, max_keys=100)
    for n in range(1000):
        limiter.retry_after(f"U{n}")
    assert len(limiter) == 100
    assert limiter.retry_after("U999") > 0  # the most recent ones are still limited


def test_seen_is_bounded_and_remembers_the_newest() -> None:
    seen = Seen(max_keys=50)
    assert all(seen.first_time(f"e{n}") for n in range(500))
    assert len(seen) == 50
    assert not seen.first_time("e499")
    assert "e0" not in seen


def test_seen_forgets_keys_older_than_max_age() -> None:
    seen = Seen(max_age=0.01)
    assert seen.first_time("e1")
    assert not seen.first_time("e1")
    time.sleep(0.02)
    assert seen.first_time("e1")  # expired: a new delivery


def test_one_rule_for_which_answers_get_buttons() -> None:
    assert is_votable(Outcome.ANSWERED) and is_votable("not_covered") and is_votable("error")
    assert not any(is_votable(o) for o in ("small_talk", "empty", "too_long", "busy"))
