"""The model registry's configuration: which models exist, who serves them, what they cost.

Read from ``ONEBOX_MODELS_FILE`` (YAML or TOML) when set; otherwise one model built from the
plain settings (the embedded default). Secrets come from the environment or a file, never
from the models file itself, and are never logged.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from onebox.core.settings import Settings


class ModelCatalogError(ValueError):
    """The models file is missing, unreadable or inconsistent."""


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_per_1m: float = Field(default=0.0, ge=0)
    output_per_1m: float = Field(default=0.0, ge=0)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m) / 1e6


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)


class Timeouts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connect: float = Field(default=5.0, gt=0)
    read: float = Field(default=60.0, gt=0)
    total: float = Field(default=600.0, gt=0)


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    aliases: list[str] = Field(default_factory=list)
    provider: str = Field(description="llamacpp | openai | fake")
    # Embedded engine
    model_path: Path | None = None
    # OpenAI-compatible upstream
    upstream_url: str | None = None
    upstream_model: str | None = None
    api_key_env: str | None = None
    api_key_file: Path | None = None
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_backoff: float = Field(default=0.2, ge=0)
    failure_threshold: int = Field(default=3, ge=1)
    cooldown_seconds: float = Field(default=30.0, ge=0)
    # Common
    context_window: int | None = Field(default=None, ge=256)
    price: Price = Field(default_factory=Price)
    defaults: Defaults = Field(default_factory=Defaults)
    fallbacks: list[str] = Field(default_factory=list)

    @field_validator("upstream_url")
    @classmethod
    def _http_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("upstream_url must start with http:// or https://")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _provider_needs(self) -> ModelSpec:
        if self.provider == "openai" and not self.upstream_url:
            raise ValueError(f"model {self.name!r}: provider 'openai' needs upstream_url")
        return self

    def api_key(self) -> str | None:
        if self.api_key_file is not None:
            try:
                return self.api_key_file.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ModelCatalogError(
                    f"model {self.name!r}: cannot read api_key_file {self.api_key_file}: "
                    f"{exc.strerror}"
                ) from exc
        if self.api_key_env is not None:
            return os.environ.get(self.api_key_env) or None
        return None


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_model: str | None = None
    models: list[ModelSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        seen: dict[str, str] = {}
        for spec in self.models:
            for public in (spec.name, *spec.aliases):
                if public in seen:
                    raise ValueError(f"model name or alias {public!r} is used twice")
                seen[public] = spec.name
        for spec in self.models:
            for fallback in spec.fallbacks:
                if fallback not in seen:
                    raise ValueError(f"model {spec.name!r}: unknown fallback {fallback!r}")
                if seen[fallback] == spec.name:
                    raise ValueError(f"model {spec.name!r} cannot fall back to itself")
        if self.default_model is not None and self.default_model not in seen:
            raise ValueError(f"default_model {self.default_model!r} is not a listed model")
        return self

    @property
    def default(self) -> str:
        return self.default_model or self.models[0].name


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelCatalogError(f"cannot read models file {path}: {exc.strerror}") from exc
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        import yaml

        return yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ModelCatalogError(f"models file {path} is not valid: {exc}") from exc
    except Exception as exc:  # yaml.YAMLError and friends
        raise ModelCatalogError(f"models file {path} is not valid: {exc}") from exc


def load_catalog(settings: Settings) -> Catalog:
    if settings.models_file is None:
        return Catalog(
            models=[
                ModelSpec(
                    name=settings.model_name,
                    aliases=["default"] if settings.model_name != "default" else [],
                    provider=settings.llm_provider,
                    model_path=settings.model_path,
                    context_window=settings.context_size,
                )
            ]
        )
    raw = _parse(settings.models_file)
    try:
        return Catalog.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'file'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ModelCatalogError(f"models file {settings.models_file}: {problems}") from exc
