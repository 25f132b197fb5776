"""Follow a running reindex for a chat: show its progress through an `edit` callback until it ends.

    run = await follow(job, edit, describe=lambda progress: f"Reindexing: {progress.describe()}")
    await edit(render_run(run))

Both chats use it (Slack edits one message, Discord the command's response).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from core.progress import ReindexProgress
from core.runlog import IndexRun
from core.service import ReindexJob

log = logging.getLogger("docsbot.chat")

#: Seconds between two edits of the progress message, at least.
PROGRESS_INTERVAL = 2.0


async def follow(
    job: ReindexJob,
    edit: Callable[[str], Awaitable[None]],
    describe: Callable[[ReindexProgress], str],
    *,
    interval: float = PROGRESS_INTERVAL,
    shown: str = "",
) -> IndexRun:
    """Show `describe(job.progress)` through `edit` (only when the text changed, at most once per
    `interval` seconds) until the job ends; returns its run record. `shown` is the text already
    on screen. A failed edit is logged and skipped: the final message is what counts."""
    changed = asyncio.Event()
    unsubscribe = job.subscribe(lambda _progress: changed.set())
    done = asyncio.ensure_future(job.wait())
    try:
        while not done.done():
            text = describe(job.progress)
            if text != shown:
                shown = text
                try:
                    await edit(text)
                except Exception as exc:
                    log.warning("reindex progress edit failed: %s", exc)
            changed.clear()
            waiter = asyncio.ensure_future(changed.wait())
            await asyncio.wait({done, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if not done.done():
                await asyncio.wait({done}, timeout=interval)
        return done.result()
    finally:
        unsubscribe()
        done.cancel()  # only this waiter: the job itself is shielded
