"""Background work of a chat adapter, tracked so shutdown (or a restart) can wait for it or cancel it.

    tasks = InFlight("slack")
    tasks.spawn(answer(event), "mention")      # a task; its exception is logged, never lost
    with tasks.track():                        # or: count the current task (a discord.py handler)
        ...
    await tasks.wait(grace=10)                 # let them finish (up to 10 s)
    await tasks.cancel()                       # then stop the rest

`ChatCore` has its own view of questions in flight (answering vs posting the final message) for
`docsbot serve`'s drain; this class is the adapters' one tracker of their own tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

log = logging.getLogger("docsbot.chat")


class InFlight:
    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        """Run `work` as a tracked task; its failures are logged."""

        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("%s: %s failed", self.name, what)

        task = asyncio.create_task(guarded(), name=f"{self.name}-{what}")
        self._add(task)
        return task

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Count the current task as in flight while the block runs."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._tasks.discard(task)

    def __len__(self) -> int:
        return sum(1 for task in self._tasks if not task.done())

    async def wait(self, grace: float) -> None:
        """Give the tasks in flight up to `grace` seconds to finish."""
        pending = self._pending()
        if pending and grace > 0:
            log.info("%s: waiting up to %.0f s for %d task(s) in flight", self.name, grace, len(pending))
            await asyncio.wait(pending, timeout=grace)

    async def cancel(self, wait: float = 5.0) -> None:
        """Cancel the tasks still running and wait (up to `wait` seconds) for them to end."""
        pending = self._pending()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=wait)

    def _pending(self) -> set[asyncio.Task[Any]]:
        current = asyncio.current_task()
        return {task for task in self._tasks if not task.done() and task is not current}

    def _add(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
