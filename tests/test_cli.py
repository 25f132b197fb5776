"""The `docsbot` command end to end, as a user runs it (separate processes, fixture pages)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import FIXTURE_DOCS, FIXTURE_PAGES, FIXTURES
from .fakes.llm_server import ThreadedFakeLLM

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def docsbot(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("cli")
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"MILVUS_URI", "DOCS_SOURCE"}},
        "MILVUS_URI": str(root / "milvus.db"),
        "DATA_DIR": str(root / "data"),
        "DOCS_SOURCE": str(FIXTURE_DOCS),
        "COLLECTION": "cli_docs",
        "LOG_LEVEL": "WARNING",
    }

    def run(*args: str, stdin: str | None = None, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            cwd=root,
            env={**env, **extra_env},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run


@pytest.fixture(scope="module")
def first_index(docsbot: Run) -> subprocess.CompletedProcess[str]:
    """The module's index, built once by the CLI itself."""
    return docsbot("index")


def test_index_then_reindex_then_status(docsbot: Run, first_index: subprocess.CompletedProcess[str]) -> None:
    first = first_index
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"ok: {FIXTURE_PAGES} added, 0 changed, 0 removed, 0 unchanged pages")

    again = docsbot("index")
    assert again.returncode == 0, again.stderr
    assert (
        f"0 added, 0 changed, 0 removed, {FIXTURE_PAGES} unchanged pages; 0 chunks embedded" in again.stdout
    )

    status = docsbot("status", "--json")
    data = json.loads(status.stdout)
    assert data["pages"] == FIXTURE_PAGES and data["chunks"] > 50
    assert set(data["last_run"]) >= {
        "outcome",
        "added",
        "changed",
        "removed",
        "unchanged",
        "errors",
        "seconds",
    }
    assert data["last_run"]["outcome"] == "ok" and data["last_run"]["unchanged"] == FIXTURE_PAGES

    human = docsbot("status")
    assert "indexed:    7 pages" in human.stdout and "hybrid dense + BM25" in human.stdout


@pytest.mark.usefixtures("first_index")
def test_ask_without_llm_prints_passages_with_links(docsbot: Run) -> None:
    ask = docsbot("ask", "--no-llm", "what is knowhere?")
    assert ask.returncode == 0, ask.stderr
    assert ask.stdout.startswith("[1] Knowhere")
    assert "https://milvus.io/docs/knowhere.md" in ask.stdout


@pytest.mark.usefixtures("first_index")
def test_chat_streams_cited_answers_from_the_configured_llm(docsbot: Run) -> None:
    with ThreadedFakeLLM(answer="M is the maximum number of edges per node [1].") as llm:
        chat = docsbot(
            "chat",
            stdin="how do I tune HNSW M?\nand what is its default?\ncan I use podman?\nhello\n",
            LLM_BASE_URL=llm.base_url,
            LLM_MODEL="fake-model",
        )
        requests = list(llm.requests)
    assert chat.returncode == 0, chat.stderr
    out = chat.stdout
    assert "M is the maximum number of edges per node [1]." in out
    assert "Sources:\n  [1] HNSW" in out and "https://milvus.io/docs/hnsw.md" in out
    assert "they never mention 'podman'" in out  # declined without the LLM
    assert "I answer questions about Milvus" in out  # small talk
    # the default path: before each answer the LLM names the docs' terms for the question; the
    # declined podman question and the small talk cost no request at all
    kinds = [r["messages"][0]["content"].split("\n")[0][:40] for r in requests]
    expanding = "You help search the Milvus documentation."
    assert [kind.startswith(expanding[:40]) for kind in kinds] == [True, False, True, False]
    first, follow_up = requests[1]["messages"][-1]["content"], requests[3]["messages"][-1]["content"]
    assert "how do I tune HNSW M?" in requests[0]["messages"][-1]["content"]
    assert "<question>\nhow do I tune HNSW M?\n</question>" in first
    assert '<turn from="asker">\nhow do I tune HNSW M?\n</turn>' in follow_up


@pytest.mark.usefixtures("first_index")
def test_unreachable_llm_is_one_honest_sentence_with_links(docsbot: Run) -> None:
    result = docsbot("ask", "what is knowhere?", LLM_BASE_URL="http://127.0.0.1:9/v1", LLM_MAX_RETRIES="0")
    assert result.returncode == 0, result.stderr  # explained, with links: the command did its job
    assert result.stdout.startswith("I couldn't reach the language model just now.")
    assert "https://milvus.io/docs/knowhere.md" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


ASK_JSON_KEYS = {"answer", "declined", "declined_by", "sources", "cited", "citations", "error", "outcome"}


@pytest.mark.usefixtures("first_index")
def test_ask_json_prints_one_object_with_only_docs_links(docsbot: Run) -> None:
    answer = "Knowhere is the vector engine [1]. Log in at [the docs](https://evil.example/login) <!channel>"
    with ThreadedFakeLLM(answer=answer) as llm:
        result = docsbot(
            "ask", "--json", "what is knowhere?", LLM_BASE_URL=llm.base_url, LLM_MODEL="fake-model"
        )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == ASK_JSON_KEYS
    assert data["outcome"] == "answered" and data["error"] is None
    assert data["cited"] is True and data["declined"] is False
    assert data["answer"].startswith("Knowhere is the vector engine [1]. Log in at the docs @")
    assert "evil" not in data["answer"] and "<!channel>" not in data["answer"]
    assert data["sources"][0] == {
        "number": 1,  # the [1] in the text
        "url": data["sources"][0]["url"],
        "title": "Knowhere",
        "page_id": "knowhere.md",
    }
    assert data["sources"][0]["url"].startswith("https://milvus.io/docs/knowhere.md")


@pytest.mark.usefixtures("first_index")
def test_ask_json_declines_with_exit_0_even_with_a_dead_llm(docsbot: Run) -> None:
    result = docsbot("ask", "--json", "can I run it with podman?", LLM_BASE_URL="http://127.0.0.1:9/v1")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["declined"] is True and data["outcome"] == "not_covered" and data["error"] is None
    assert data["declined_by"] == "gate"
    assert data["cited"] is False and data["sources"]


@pytest.mark.usefixtures("first_index")
def test_ask_with_a_trickling_llm_stops_at_llm_timeout_and_exits_0(docsbot: Run) -> None:
    words = "Knowhere is the vector execution engine [1] " + "and more " * 100  # ~100 s at 0.5 s a token
    with ThreadedFakeLLM(answer=words, token_delay=0.5) as llm:
        started = time.monotonic()
        result = docsbot("ask", "--json", "what is knowhere?", LLM_BASE_URL=llm.base_url, LLM_TIMEOUT="3")
        took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["error"] == "llm_timeout" and data["outcome"] == "error"
    assert data["answer"].startswith("Knowhere is the vector")
    assert data["answer"].endswith(
        "(The answer stops here: the language model took too long. The sources below have the rest.)"
    )
    assert data["sources"] and took < 45, took  # the whole stream would take ~100 s


@pytest.mark.usefixtures("first_index")
def test_ask_with_a_stream_dropped_midway_shows_the_part_and_one_sentence(docsbot: Run) -> None:
    words = "Knowhere is the vector execution engine [1] and the rest never arrives"
    with ThreadedFakeLLM(answer=words, drop_after=5) as llm:
        result = docsbot("ask", "what is knowhere?", LLM_BASE_URL=llm.base_url, LLM_MAX_RETRIES="0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "Knowhere is the vector execution\n\n(The answer stops here: the language model stopped responding."
    )
    assert result.stdout.count("Knowhere is the vector execution") == 1
    assert "Sources:" in result.stdout and "Traceback" not in result.stdout + result.stderr


@pytest.mark.usefixtures("first_index")
def test_eval_json_has_the_documented_keys(docsbot: Run) -> None:
    result = docsbot("eval", "--questions", str(FIXTURES / "questions.jsonl"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {
        "n",
        "hit@1",
        "hit@5",
        "mrr@10",
        "decline_out_of_scope",
        "decline_in_scope",
        "per_kind",
        "context_fact_proxy",
    }
    assert data["n"] == 5 and data["hit@5"] == 1.0


@pytest.mark.usefixtures("first_index")
def test_eval_details_writes_one_documented_line_per_question(docsbot: Run, tmp_path: Path) -> None:
    out = tmp_path / "details.jsonl"
    result = docsbot(
        "eval", "--questions", str(FIXTURES / "questions.jsonl"), "--json", "--details", str(out)
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == ["t1", "t2", "t3", "t4", "t5", "t6"]
    for row in rows:
        assert {"id", "rank", "top_pages", "declined", "gate"} <= set(row)
        assert {"covered", "probability", "threshold", "reason", "signals"} <= set(row["gate"])
    assert rows[0]["rank"] == 1 and not rows[0]["declined"]
    assert rows[5]["declined"] and "not covered" in rows[5]["gate"]["reason"]


@pytest.mark.usefixtures("first_index")
def test_failed_index_exits_non_zero_and_keeps_the_index(docsbot: Run, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = docsbot("index", "--source", str(empty))
    assert result.returncode == 1
    assert "produced no pages" in result.stdout
    assert json.loads(docsbot("status", "--json").stdout)["pages"] == FIXTURE_PAGES


@pytest.mark.usefixtures("first_index")
def test_index_that_would_delete_too_much_needs_review_and_exits_non_zero(
    docsbot: Run, tmp_path: Path
) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(FIXTURE_DOCS / "indexes", partial)  # 2 of the 7 pages: 5 would go
    result = docsbot("index", "--source", str(partial))
    assert result.returncode == 1 and result.stdout.startswith("needs_review:")
    assert "5 of 7 indexed pages would be deleted" in result.stdout and "--force" in result.stdout
    status = json.loads(docsbot("status", "--json").stdout)
    assert status["pages"] == FIXTURE_PAGES and status["last_run"]["outcome"] == "needs_review"
    assert "would be deleted" in docsbot("status").stdout


def test_missing_source_is_one_line_not_a_traceback(docsbot: Run) -> None:
    result = docsbot("index", "--source", "/no/such/dir")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "docsbot: docs source '/no/such/dir' is neither a URL, 'bundled' nor an existing directory"
    )


def test_chat_on_an_empty_index_says_what_to_do(docsbot: Run) -> None:
    result = docsbot("chat", stdin="", COLLECTION="nothing_here")
    assert result.returncode == 1 and "run `docsbot index` first" in result.stderr


def test_ask_on_an_empty_index_tells_the_operator_what_to_run(docsbot: Run) -> None:
    result = docsbot("ask", "--no-llm", "what is knowhere?", COLLECTION="nothing_here")
    assert result.returncode == 1 and "run `docsbot index` first" in result.stdout
    assert "operators can see" not in result.stdout  # the chat users' sentence is not for the terminal
    as_json = docsbot("ask", "--json", "--no-llm", "what is knowhere?", COLLECTION="nothing_here")
    answer = json.loads(as_json.stdout)
    assert answer["error"] == "index_empty" and "run `docsbot index` first" in answer["answer"]


@pytest.mark.usefixtures("first_index")
def test_eval_answers_adds_fact_scores_beside_the_retrieval_keys(docsbot: Run, tmp_path: Path) -> None:
    from .fakes.judge_server import ThreadedFakeJudge

    questions, details_file = tmp_path / "answers.jsonl", tmp_path / "details.jsonl"
    row = {
        "id": "a1",
        "question": "what does M control in an HNSW index?",
        "relevant_pages": ["hnsw.md"],
        "answer_facts": [
            "M is the maximum number of edges per node, in [2, 2048]",
            "it trades memory for recall",
        ],
        "kind": "parameter",
    }
    questions.write_text(json.dumps(row) + "\n")
    verdicts = {"verdicts": [{"fact": 1, "verdict": "supported"}, {"fact": 2, "verdict": "missing"}]}
    with (
        ThreadedFakeLLM(answer="M is the maximum number of edges per node [1], from 2 to 2048.") as llm,
        ThreadedFakeJudge([json.dumps(verdicts)]) as judge,
    ):
        result = docsbot(
            "eval", "--questions", str(questions), "--answers", "--json", "--details", str(details_file),
            LLM_BASE_URL=llm.base_url, LLM_MODEL="fake-model",
            JUDGE_BASE_URL=judge.base_url, JUDGE_MODEL="judge-model",
        )  # fmt: skip
        judged = list(judge.requests)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    retrieval_keys = {"n", "hit@1", "hit@5", "mrr@10", "decline_out_of_scope", "decline_in_scope", "per_kind"}
    assert retrieval_keys <= set(data) and data["hit@1"] == 1.0
    assert data["model"] == "fake-model" and data["answers_n"] == 1
    assert data["fact_proxy"] == 1.0 and data["facts_scored_by_proxy"] == 1  # 2 and 2048; fact 2 is prose
    assert data["cited_relevant"] == 1.0 and data["answer_decline_in_scope"] == 0.0
    assert data["answer_seconds_p50"] > 0 and data["answer_seconds_p95"] >= data["answer_seconds_p50"]
    assert data["judge_model"] == "judge-model" and data["judge_errors"] == 0
    assert data["judge_supported"] == 0.5 and data["judge_missing"] == 0.5
    assert data["judge_contradicted"] == 0.0
    assert len(judged) == 1 and "from 2 to 2048" in judged[0]["messages"][1]["content"]
    # --details: the question's row also says what the model answered and how it scored
    (details,) = [json.loads(line) for line in details_file.read_text().splitlines()]
    answer = details["answer"]
    assert details["id"] == "a1" and details["rank"] == 1
    assert answer["text"].startswith("M is the maximum number of edges per node [1]")
    assert answer["outcome"] == "answered" and not answer["declined"] and answer["declined_by"] is None
    assert answer["citations"] == "model" and answer["cited_pages"] == ["hnsw.md"]
    assert answer["cited_relevant"]
    assert answer["fact_proxy"] == [1.0, None]  # the second fact has no numbers or identifiers
    assert answer["judge"] == ["supported", "missing"] and answer["judge_error"] is None
    assert answer["seconds"] > 0 and answer["error"] is None


@pytest.mark.usefixtures("first_index")
def test_eval_translate_searches_other_languages_in_english(docsbot: Run, tmp_path: Path) -> None:
    questions, details_file = tmp_path / "es.jsonl", tmp_path / "details.jsonl"
    rows = [
        {"id": "es1", "question": "¿Qué controla el parámetro M en un índice HNSW? No lo entiendo.",
         "relevant_pages": ["hnsw.md"], "kind": "parameter"},
        {"id": "en1", "question": "what does M control in an HNSW index?",
         "relevant_pages": ["hnsw.md"], "kind": "parameter"},
    ]  # fmt: skip
    questions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with ThreadedFakeLLM() as llm:
        result = docsbot(
            "eval", "--questions", str(questions), "--translate", "--json", "--details", str(details_file),
            LLM_BASE_URL=llm.base_url, LLM_MODEL="fake-model",
        )  # fmt: skip
        requests = list(llm.requests)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["translated"] == 1 and data["hit@1"] == 1.0
    searched = [json.loads(line)["searched_in_english"] for line in details_file.read_text().splitlines()]
    assert searched == ["What does M control in an HNSW index?", None]
    assert len(requests) == 1  # the translation; eval without --answers generates nothing


def _eval_in_and_out(
    docsbot: Run, tmp_path: Path, flag: str, fake: dict[str, str], **env: str
) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """`docsbot eval FLAG --json --details` on one covered and one out-of-scope question against
    a fake LLM: the report, the details rows and the number of LLM requests."""
    questions, details_file = tmp_path / "q.jsonl", tmp_path / "details.jsonl"
    rows = [
        {"id": "in1", "question": "what does M control in an HNSW index?", "relevant_pages": ["hnsw.md"]},
        {"id": "out1", "question": "can I run it with podman instead of docker?", "relevant_pages": []},
    ]
    questions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with ThreadedFakeLLM(**fake) as llm:
        result = docsbot(
            "eval", "--questions", str(questions), flag, "--json", "--details", str(details_file),
            LLM_BASE_URL=llm.base_url, LLM_MODEL="fake-model", **env,
        )  # fmt: skip
        requests = len(llm.requests)
    assert result.returncode == 0, result.stderr
    details = [json.loads(line) for line in details_file.read_text().splitlines()]
    return json.loads(result.stdout), details, requests


@pytest.mark.usefixtures("first_index")
def test_eval_check_scope_counts_the_llms_declines(docsbot: Run, tmp_path: Path) -> None:
    data, details, requests = _eval_in_and_out(
        docsbot, tmp_path, "--check-scope", {"scope": "NO"}, SCOPE_CHECK_BELOW="1.0"
    )
    assert data["declined_by_scope_check"] == 1 and data["decline_in_scope"] == 1.0
    assert data["decline_out_of_scope"] == 1.0 and data["hit@1"] == 1.0  # the pages are still ranked
    assert [row["gate"]["by"] for row in details] == ["scope_check", "gate"]
    assert requests == 1  # the gate's own decline asks the LLM nothing


@pytest.mark.usefixtures("first_index")
def test_eval_expand_searches_the_docs_terms_the_llm_names(docsbot: Run, tmp_path: Path) -> None:
    terms = "in-memory replicas, replica_number"
    data, details, requests = _eval_in_and_out(docsbot, tmp_path, "--expand", {"terms": terms})
    assert data["expanded"] == 1 and data["hit@1"] == 1.0 and data["decline_out_of_scope"] == 1.0
    assert [row["expanded_with"] for row in details] == [terms, None]  # a declined question: no terms
    assert requests == 1
