"""Builds a provider for one model spec. Each backend's module is imported only when used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from onebox.core.settings import Settings
from onebox.llm.base import Capabilities, ChatProvider
from onebox.llm.catalog import ModelSpec

if TYPE_CHECKING:
    import httpx


def llamacpp(spec: ModelSpec, settings: Settings, http: httpx.AsyncClient) -> ChatProvider:
    try:
        from onebox.llm.llamacpp import LlamaCppProvider
    except ImportError as exc:  # pragma: no cover - llama-cpp-python is a core dependency
        raise ImportError(
            "The embedded engine needs llama-cpp-python: pip install 'onebox' (it compiles once)"
        ) from exc
    overrides: dict[str, object] = {"model_name": spec.name}
    if spec.model_path is not None:
        overrides["model_path"] = spec.model_path
    if spec.context_window is not None:
        overrides["context_size"] = spec.context_window
    return LlamaCppProvider.from_settings(settings.model_copy(update=overrides))


def openai_compatible(spec: ModelSpec, settings: Settings, http: httpx.AsyncClient) -> ChatProvider:
    from onebox.llm.openai_compat import OpenAICompatProvider

    assert spec.upstream_url is not None  # guaranteed by ModelSpec validation
    return OpenAICompatProvider(
        model_name=spec.name,
        context_size=spec.context_window or 8192,
        base_url=spec.upstream_url,
        upstream_model=spec.upstream_model or spec.name,
        api_key=spec.api_key(),
        connect_timeout=spec.timeouts.connect,
        read_timeout=spec.timeouts.read,
        total_timeout=spec.timeouts.total,
        max_retries=spec.max_retries,
        retry_backoff=spec.retry_backoff,
        failure_threshold=spec.failure_threshold,
        cooldown_seconds=spec.cooldown_seconds,
        client=http,
    )


def fake(spec: ModelSpec, settings: Settings, http: httpx.AsyncClient) -> ChatProvider:
    from onebox.llm.fake import FakeProvider

    return FakeProvider(
        model_name=spec.name,
        context_size=spec.context_window or settings.context_size,
        capabilities=Capabilities(local=True),
        # "fake-cite…" models quote passage 1 and cite it (demos and tests of citations).
        cite="cite" in spec.name,
    )
