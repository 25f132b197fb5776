"""`docsbot serve` end to end: a real process answering on fake Slack and Discord at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tests.fakes.discord_api", reason="the fake Discord is not in this checkout yet")

from .fakes.serve_stack import ServeStack, sample

QUESTION = "what does M control in an HNSW index?"


@pytest.mark.slow
async def test_serve_answers_on_slack_and_discord_and_its_metrics_move(tmp_path: Path) -> None:
    async with ServeStack(tmp_path) as stack:
        status, body = await stack.get("/healthz")
        assert status == 200
        status, body = await stack.get("/readyz")
        assert status == 200 and json.loads(body)["ready"] is True
        before = await stack.metrics()

        await stack.ask_slack(QUESTION)
        await stack.ask_discord(QUESTION)

        finals = stack.final_texts()
        assert "edges per node" in finals["slack"][0] and "edges per node" in finals["discord"][0]
        after = await stack.metrics()
        for adapter in ("slack", "discord"):
            name = f'docsbot_questions_total{{adapter="{adapter}",outcome="answered"}}'
            assert sample(before, name) == 0 and sample(after, name) == 1
            assert sample(after, f'docsbot_answer_seconds_count{{adapter="{adapter}"}}') == 1
        assert sample(after, "docsbot_pages_indexed") > 0

        await stack.llm.stop()  # the LLM server goes away: not ready, and /readyz says which
        status, body = await stack.get("/readyz")
        assert status == 503 and json.loads(body)["failed"] == ["llm"]
        assert await stack.stop() == 0
    log = stack.log()
    assert "xoxb-stack-test" not in log and "discord-stack-test" not in log
    assert "Traceback" not in log, log[-3000:]
