"""The scheduled jobs inside `docsbot serve`: the reindex, and the weekly report post.

REINDEX_CRON (crontab, default daily at 04:00 with up to REINDEX_JITTER seconds of jitter) or
REINDEX_INTERVAL (hours) picks the schedule; both empty/zero disables it. The job only starts
the service's single-flight reindex, so a scheduled run and an admin's `/reindex` never crawl
twice at once: whichever comes second joins the first. `docsbot serve` also adds daily
housekeeping (records retention pruning, 03:30 UTC) and, with REPORT_CHANNEL set, the weekly
report (Mondays 09:00 UTC) to the same scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.config import Settings
from core.errors import ConfigError
from core.service import RagService

log = logging.getLogger("docsbot.scheduler")

#: A run missed by less than this (process busy or asleep) still happens, once (coalesced).
MISFIRE_GRACE = 3600
#: When the weekly report is posted (REPORT_CHANNEL).
WEEKLY_REPORT = CronTrigger(day_of_week="mon", hour=9, minute=0, timezone="UTC")
#: When the daily housekeeping jobs run (records retention pruning).
DAILY = CronTrigger(hour=3, minute=30, timezone="UTC")


def reindex_trigger(settings: Settings) -> BaseTrigger | None:
    """The trigger for the settings, None when the schedule is off; ConfigError when invalid."""
    jitter = settings.reindex_jitter or None
    if settings.reindex_interval:
        return IntervalTrigger(hours=settings.reindex_interval, jitter=jitter)
    if not settings.reindex_cron.strip():
        return None
    try:
        cron = CronTrigger.from_crontab(settings.reindex_cron, timezone="UTC")
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: REINDEX_CRON: {exc}") from exc
    cron.jitter = jitter  # from_crontab has no jitter argument; the attribute is what it reads
    return cron


class ReindexScheduler:
    """Owns an AsyncIOScheduler with the one reindex job. Start and stop it on the event loop."""

    def __init__(self, settings: Settings, service: RagService) -> None:
        self.service = service
        self.trigger = reindex_trigger(settings)
        self._scheduler = AsyncIOScheduler(timezone="UTC")

    def add_weekly_report(self, post: Callable[[], Awaitable[None]]) -> None:
        """Also run `post` every Monday at 09:00 UTC (call before `start`)."""
        self._scheduler.add_job(
            post,
            WEEKLY_REPORT,
            id="weekly-report",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=MISFIRE_GRACE,
        )

    def add_daily(self, job_id: str, job: Callable[[], Awaitable[None]]) -> None:
        """Also run `job` every day at 03:30 UTC (call before `start`)."""
        self._scheduler.add_job(
            job, DAILY, id=job_id, max_instances=1, coalesce=True, misfire_grace_time=MISFIRE_GRACE
        )

    def job_ids(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()]

    def start(self) -> None:
        if self.trigger is None:
            log.info("scheduled reindex is off (REINDEX_CRON and REINDEX_INTERVAL are empty)")
        else:
            self._scheduler.add_job(
                self.run_now,
                self.trigger,
                id="reindex",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=MISFIRE_GRACE,
            )
        if not self._scheduler.get_jobs():
            return
        self._scheduler.start()
        if self.trigger is not None:
            log.info("scheduled reindex: %s; next run at %s", self.trigger, self.next_run_time)

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    @property
    def next_run_time(self) -> datetime | None:
        job = self._scheduler.get_job("reindex")
        return job.next_run_time if job is not None else None

    async def run_now(self) -> None:
        """The job: start (or join) the reindex and log its outcome; never raises."""
        try:
            job, started = self.service.start_reindex(trigger="schedule")
            if not started:
                log.info("scheduled reindex: a reindex is already running; joined it")
            run = await job.wait()
            level = logging.INFO if run.outcome == "ok" else logging.WARNING
            log.log(
                level,
                "scheduled reindex %s: %d added, %d changed, %d removed, %d errors; %s",
                run.outcome,
                run.added,
                run.changed,
                run.removed,
                run.errors,
                run.message,
            )
        except Exception:
            log.exception("scheduled reindex failed")
