"""Bounded in-memory maps for the chats: a per-user rate limiter and a seen-keys set (dedupe).

Both hold at most `max_keys` keys and forget the least recently used first, so a flood of new
users or events costs bounded memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque

#: Keys a map keeps at most (users for the rate limiter, events/messages for dedupe).
MAX_KEYS = 10_000


class RateLimiter:
    """At most `per_minute` questions per user in any `window`-second window (0 = unlimited)."""

    def __init__(self, per_minute: int, window: float = 60.0, max_keys: int = MAX_KEYS) -> None:
        self.per_minute = per_minute
        self.window = window
        self.max_keys = max_keys
        self._asked: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, user_id: str) -> float:
        """0 when the user may ask now (and counts it), else the seconds until they may."""
        if not self.per_minute:
            return 0.0
        now = time.monotonic()
        asked = self._asked.pop(user_id, None) or deque()
        while asked and now - asked[0] >= self.window:
            asked.popleft()
        self._asked[user_id] = asked  # most recently used last
        while len(self._asked) > self.max_keys:
            self._asked.popitem(last=False)
        if len(asked) >= self.per_minute:
            return self.window - (now - asked[0])
        asked.append(now)
        return 0.0

    def __len__(self) -> int:
        return len(self._asked)


class Seen:
    """Keys seen in the last `max_age` seconds (at most `max_keys` of them), oldest forgotten
    first: event dedupe, threads the bot answered in, threads handed to a human."""

    def __init__(self, max_keys: int = MAX_KEYS, max_age: float = 3600.0) -> None:
        self.max_keys = max_keys
        self.max_age = max_age
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, key: str) -> bool:
        """True the first time `key` comes (and remembers it), False for a repeat."""
        self._expire()
        if key in self._seen:
            return False
        self._seen[key] = time.monotonic()
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)
        return True

    def __contains__(self, key: object) -> bool:
        self._expire()
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._seen and now - next(iter(self._seen.values())) > self.max_age:
            self._seen.popitem(last=False)
