"""Answers scored on their facts: the offline proxy on hand-made answers, and the judge path
against a fake OpenAI-compatible judge on 127.0.0.1 (valid, malformed, failing and silent)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from core.answer_eval import (
    FactJudge,
    context_fact_proxy,
    evaluate_answers,
    fact_proxy,
    fact_terms,
    format_answer_report,
    parse_verdicts,
    score_answer,
    summarize_answers,
)
from core.errors import ConfigError, JudgeError
from core.evaluation import Judged, Question
from core.models import Answer, Source

from .conftest import make_settings
from .fakes.judge_server import FakeJudge

EF_FACT = "efConstruction range [2, 2048], default 360"


def _verdicts(*labels: str) -> str:
    return json.dumps({"verdicts": [{"fact": n, "verdict": v} for n, v in enumerate(labels, start=1)]})


# --- the proxy ---------------------------------------------------------------------------------


def test_fact_terms_are_the_numbers_and_identifiers_not_plain_words() -> None:
    assert fact_terms(EF_FACT) == ["efconstruction", "2", "2048", "360"]
    assert fact_terms("supported metrics are HAMMING (default) and JACCARD") == ["hamming", "jaccard"]
    assert fact_terms("set proxy.maxFieldNum, e.g. to 64") == ["proxy.maxfieldnum", "64"]
    assert fact_terms("set replicas to -1 for 2-5x the limit") == ["-1", "2", "5"]
    assert fact_terms("model BAAI/bge-reranker-v2-m3 via with_raw_data") == [
        "baai/bge-reranker-v2-m3",
        "with_raw_data",
    ]
    assert fact_terms("warm up can preload critical fields to avoid first-query latency") == []


def test_proxy_is_the_share_of_terms_found_in_the_answer() -> None:
    full = "Set efConstruction between 2 and 2048; the default is 360 [1]."
    assert fact_proxy(full, EF_FACT) == 1.0
    assert fact_proxy("Raise EFCONSTRUCTION up to 2048 [3].", EF_FACT) == 0.5  # case-insensitive
    assert fact_proxy("Nothing relevant here.", EF_FACT) == 0.0
    assert fact_proxy("any answer", "warm up can preload fields") is None  # prose: not scorable


def test_citation_markers_and_longer_numbers_do_not_count() -> None:
    # "[2]" is a citation, not the number 2; 20480 and 2048.5 are not 2048; 3600 is not 360
    assert fact_proxy("The default is big [2][1]; try 20480 or 2048.5 or 3600.", EF_FACT) == 0.0
    assert fact_proxy("64 fields", "at most 64 fields") == 1.0
    assert fact_proxy("640 fields, or 6.4", "at most 64 fields") == 0.0
    assert fact_proxy("set proxy.maxFieldNumber", "proxy.maxFieldNum is 64") == 0.0


def test_thousands_separators_and_version_prefixes_are_normalised() -> None:
    assert fact_proxy("about 1000 shards", "at most 1,000 shards") == 1.0
    assert fact_proxy("planned for Milvus 3.1 in 2026", "Milvus v3.1 in late 2026") == 1.0


async def test_echoing_the_question_scores_only_without_the_questions_own_terms() -> None:
    q = Question(
        "e",
        "SCANN reorder_k: a good value?",
        ("scann.md",),
        "parameter",
        answer_facts=("reorder_k is the number of candidates re-ranked; start at 2-5x your limit",),
    )
    echo = await score_answer(q, _answer("SCANN reorder_k: a good value? [1]", page="scann.md"), None)
    assert echo.proxy == [pytest.approx(1 / 3)]  # reorder_k is there, 2 and 5 are not
    assert echo.proxy_beyond_question == [0.0]  # reorder_k came from the question
    real = await score_answer(q, _answer("Set reorder_k to 2 to 5 times the limit [1]."), None)
    assert real.proxy == [1.0] and real.proxy_beyond_question == [1.0]
    uncited = await score_answer(q, _answer("Set reorder_k to 2-5x the limit.", page="scann.md"), None)
    assert real.model_cited and not uncited.model_cited and uncited.cited_relevant  # sources listed anyway
    summary = summarize_answers([echo, real], "m")
    assert summary["fact_proxy"] == pytest.approx(round((1 / 3 + 1) / 2, 3))
    assert summary["fact_proxy_beyond_question"] == 0.5


def _q(qid: str, kind: str = "parameter", facts: tuple[str, ...] = (EF_FACT,)) -> Question:
    return Question(qid, f"question {qid}?", ("hnsw.md",), kind, answer_facts=facts)


def _answer(text: str, outcome: str = "answered", page: str = "hnsw.md", seconds: float = 1.0) -> Answer:
    source = Source(1, "HNSW", "Index params", f"https://milvus.io/docs/{page}#Index-params")
    return Answer(text, outcome, (source,) if outcome == "answered" else (), None, seconds)


async def test_report_per_model_without_a_judge_has_only_proxy_keys() -> None:
    answers = {
        "question a?": _answer("efConstruction is in [2, 2048], default 360 [1].", seconds=2.0),
        "question b?": _answer("efConstruction defaults to 360 [1].", page="ivf.md", seconds=4.0),
        "question c?": _answer("The Milvus docs you found don't cover this.", seconds=9.0),  # model decline
        "question d?": _answer("Not covered.", outcome="not_covered", seconds=0.01),  # gate decline
        "question e?": _answer("Not covered.", outcome="not_covered", seconds=0.01),
    }

    async def ask(question: str) -> Answer:
        return answers[question]

    questions = [_q("a"), _q("b"), _q("c"), _q("d"), _q("e", kind="out_of_scope", facts=())]
    rows = await evaluate_answers(questions, ask)
    summary = summarize_answers(rows, "some-model")
    assert summary["model"] == "some-model" and summary["answers_n"] == 4
    assert summary["fact_proxy"] == pytest.approx(round((1.0 + 0.5 + 0 + 0) / 4, 3))
    assert summary["fact_proxy_answered"] == 0.75
    assert summary["facts_scored_by_proxy"] == 4
    assert summary["cited_relevant"] == 0.5  # of the two answered in scope, one cites hnsw.md
    assert summary["model_cited"] == 1.0  # both carry [1] in their text
    assert summary["answer_decline_in_scope"] == 0.5 and summary["answer_decline_out_of_scope"] == 1.0
    assert summary["answer_seconds_p50"] == 4.0 and summary["answer_seconds_p95"] == 9.0
    assert not any(key.startswith("judge") for key in summary)
    report = format_answer_report(summary)
    assert "fact proxy 0.375" in report and "judge" not in report


# --- the judge ---------------------------------------------------------------------------------


def test_the_passages_are_scored_on_the_facts_like_an_answer() -> None:
    """What the LLM would read, scored offline: a ranking that puts the right page first with a
    passage lacking the values scores lower."""
    hnsw = Question(
        "q1", "how to set M?", ("hnsw.md",), "parameter", answer_facts=("M: default 30", "efConstruction 360")
    )
    prose = Question("q2", "what is it?", ("a.md",), "conceptual", answer_facts=("plain words only",))
    off = Question("q3", "joins?", (), "out_of_scope", answer_facts=("ignored 99",))
    with_values = Judged(hnsw, ("hnsw.md",), False, passages=("M defaults to 30.", "efConstruction: 360"))
    without = Judged(
        hnsw, ("hnsw.md",), False, passages=("HNSW builds a graph; efConstruction sets the build effort.",)
    )
    unscored = Judged(prose, ("a.md",), False, passages=("anything",))
    assert context_fact_proxy([with_values, unscored, Judged(off, (), True)]) == 1.0
    assert context_fact_proxy([without]) == 0.25  # no "30"; "efconstruction" without "360"
    assert context_fact_proxy([with_values, without]) == 0.625
    assert context_fact_proxy([unscored]) is None


def test_verdicts_are_parsed_strictly() -> None:
    assert parse_verdicts(_verdicts("supported", "missing"), 2) == ["supported", "missing"]
    assert parse_verdicts("```json\n" + _verdicts("contradicted") + "\n```", 1) == ["contradicted"]
    malformed = [
        "Sure! Here is my verdict: supported",
        _verdicts("supported") + " and some chatter",
        json.dumps({"verdicts": [{"fact": 1, "verdict": "probably"}]}),
        json.dumps({"verdicts": [{"fact": 1, "verdict": "supported"}, {"fact": 1, "verdict": "missing"}]}),
        json.dumps({"verdicts": [{"fact": True, "verdict": "supported"}]}),
        json.dumps({"verdicts": [{"fact": 3, "verdict": "supported"}]}),
        json.dumps([{"fact": 1, "verdict": "supported"}]),
        "",
    ]
    for text in malformed:
        with pytest.raises(JudgeError):
            parse_verdicts(text, 1)
    with pytest.raises(JudgeError, match="1 of 2 facts"):
        parse_verdicts(_verdicts("supported"), 2)


@pytest.fixture
async def judge_server() -> AsyncIterator[FakeJudge]:
    server = await FakeJudge().start()
    yield server
    await server.stop()


def _judge(server: FakeJudge, timeout: float = 5.0) -> FactJudge:
    return FactJudge(server.base_url, "judge-model", "sk-judge", timeout=timeout, retries=2, backoff=0)


async def test_judge_labels_every_fact_and_is_reported_apart_from_the_proxy(judge_server: FakeJudge) -> None:
    judge_server.script = [_verdicts("supported", "contradicted"), _verdicts("missing", "supported")]
    facts = (EF_FACT, "M is the maximum number of edges per node")
    answer = _answer("efConstruction is in [2, 2048], default 360 [1].")

    async def ask(question: str) -> Answer:
        return answer

    judge = _judge(judge_server)
    try:
        rows = await evaluate_answers([_q("a", facts=facts), _q("b", facts=facts)], ask, judge)
    finally:
        await judge.close()
    summary = summarize_answers(rows, "some-model", judge.model)
    assert summary["judge_model"] == "judge-model" and summary["judge_facts"] == 4
    assert summary["judge_supported"] == 0.5
    assert summary["judge_contradicted"] == 0.25 and summary["judge_missing"] == 0.25
    assert summary["judge_errors"] == 0
    assert summary["fact_proxy"] == 1.0  # the proxy scores only the fact with identifiers
    request = judge_server.requests[0]
    assert request["model"] == "judge-model" and request["temperature"] == 0
    prompt = request["messages"][1]["content"]
    assert f"1. {EF_FACT}" in prompt and "2. M is the maximum" in prompt and "default 360" in prompt


async def test_malformed_replies_are_retried_then_accepted(judge_server: FakeJudge) -> None:
    judge_server.script = ["not json at all", json.dumps({"verdicts": "supported"}), _verdicts("supported")]
    judge = _judge(judge_server)
    try:
        assert await judge.judge("q?", "answer", [EF_FACT]) == ["supported"]
    finally:
        await judge.close()
    assert len(judge_server.requests) == 3


async def test_server_errors_and_timeouts_are_retried(judge_server: FakeJudge) -> None:
    judge_server.script = [500, None, _verdicts("missing")]
    judge = _judge(judge_server, timeout=0.5)
    try:
        assert await judge.judge("q?", "answer", [EF_FACT]) == ["missing"]
    finally:
        await judge.close()
    assert len(judge_server.requests) == 3


async def test_a_judge_that_keeps_failing_is_counted_not_fatal(judge_server: FakeJudge) -> None:
    # question a: three malformed replies (1 try + 2 retries); question b: a good one
    judge_server.script = ["nope", "nope", "{}", _verdicts("supported")]

    async def ask(question: str) -> Answer:
        return _answer("efConstruction defaults to 360 [1].")

    judge = _judge(judge_server)
    try:
        rows = await evaluate_answers([_q("a"), _q("b")], ask, judge)
    finally:
        await judge.close()
    assert "failed after 3 attempts" in rows[0].judge_error and rows[0].verdicts is None
    summary = summarize_answers(rows, "m", judge.model)
    assert summary["judge_errors"] == 1 and summary["judge_facts"] == 1 and summary["judge_supported"] == 1.0
    assert summary["fact_proxy"] == 0.5  # the proxy still scored both answers


async def test_declined_answers_are_not_sent_to_the_judge(judge_server: FakeJudge) -> None:
    async def ask(question: str) -> Answer:
        return _answer("Not covered.", outcome="not_covered")

    judge = _judge(judge_server)
    try:
        rows = await evaluate_answers([_q("a")], ask, judge)
    finally:
        await judge.close()
    assert rows[0].verdicts == ["missing"] and judge_server.requests == []


def test_judge_comes_from_settings_and_needs_a_model(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    assert FactJudge.from_settings(make_settings(root)) is None
    with pytest.raises(ConfigError, match="JUDGE_MODEL"):
        FactJudge.from_settings(make_settings(root, judge_base_url="http://127.0.0.1:9/v1"))
    judge = FactJudge.from_settings(
        make_settings(root, judge_base_url="http://127.0.0.1:9/v1", judge_model="llama")
    )
    assert judge is not None and judge.model == "llama"
