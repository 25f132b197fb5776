"""The reindex schedule: settings -> trigger, and a due job starting or joining the reindex."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.scheduler import ReindexScheduler, reindex_trigger
from core.config import load_settings
from core.errors import ConfigError
from core.service import open_service

from .conftest import CountingEmbedder, make_settings


def test_default_is_daily_cron_with_jitter() -> None:
    trigger = reindex_trigger(load_settings(env_file=None))
    assert isinstance(trigger, CronTrigger) and trigger.jitter == 600
    assert "hour='4'" in str(trigger) and "minute='0'" in str(trigger)


def test_interval_wins_and_empty_cron_disables() -> None:
    interval = reindex_trigger(load_settings(env_file=None, reindex_interval=6, reindex_jitter=0))
    assert isinstance(interval, IntervalTrigger) and interval.interval.total_seconds() == 6 * 3600
    assert reindex_trigger(load_settings(env_file=None, reindex_cron="")) is None


def test_invalid_cron_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="REINDEX_CRON"):
        reindex_trigger(load_settings(env_file=None, reindex_cron="every day at noon"))


async def test_due_job_runs_the_reindex_and_shares_the_single_flight_guard(
    tmp_path: Path, counting_embedder: CountingEmbedder
) -> None:
    # 0.0005 h = 1.8 s between runs, no jitter: the first run is due 1.8 s after start
    settings = make_settings(tmp_path, reindex_interval=0.0005, reindex_jitter=0)
    async with open_service(settings, embedder=counting_embedder, generation=False) as service:
        admin_job, _ = service.start_reindex(trigger="admin")
        scheduler = ReindexScheduler(settings, service)
        scheduler.start()
        try:
            assert scheduler.next_run_time is not None
            await admin_job.wait()  # meanwhile a due scheduled run joins it instead of crawling
            for _ in range(600):
                last = service.last_run()
                if last is not None and last.trigger == "schedule":
                    break
                await asyncio.sleep(0.1)
            runs = _all_runs(tmp_path)
            assert runs[0] == "admin" and "schedule" in runs
        finally:
            scheduler.shutdown()
        await asyncio.sleep(0.05)  # AsyncIOScheduler stops on its next loop iteration
        assert not scheduler.running


def _all_runs(root: Path) -> list[str]:
    import json

    path = root / "data" / "index-runs" / "test_docs.jsonl"
    return [json.loads(line)["trigger"] for line in path.read_text().splitlines()]


async def test_weekly_report_job_runs_on_mondays_at_nine_utc(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, reindex_cron="")

    async def post() -> None: ...

    scheduler = ReindexScheduler(settings, service=None)  # type: ignore[arg-type]
    scheduler.add_weekly_report(post)
    scheduler.start()
    try:
        job = scheduler._scheduler.get_job("weekly-report")
        assert job is not None and scheduler.next_run_time is None  # no reindex job
        when = job.next_run_time
        assert (when.weekday(), when.hour, when.minute) == (0, 9, 0) and when.utcoffset().total_seconds() == 0
    finally:
        scheduler.shutdown()
