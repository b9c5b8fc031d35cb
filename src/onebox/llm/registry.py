"""Chooses a provider by a config string. Optional SDKs are imported only when chosen."""

from __future__ import annotations

import importlib
from typing import Protocol

from onebox.core.settings import Settings
from onebox.llm.base import ChatProvider


class ProviderFactory(Protocol):
    def __call__(self, settings: Settings) -> ChatProvider: ...


# name -> "module:callable"; the callable takes Settings and returns a ChatProvider.
PROVIDERS: dict[str, str] = {
    "llamacpp": "onebox.llm.llamacpp:LlamaCppProvider.from_settings",
    "fake": "onebox.testing.fake_provider:FakeProvider.from_settings",
}


class UnknownProviderError(ValueError):
    pass


def _resolve(target: str) -> ProviderFactory:
    module_name, _, attribute_path = target.partition(":")
    resolved: object = importlib.import_module(module_name)
    for attribute in attribute_path.split("."):
        resolved = getattr(resolved, attribute)
    return resolved  # type: ignore[return-value]


def build_provider(settings: Settings) -> ChatProvider:
    target = PROVIDERS.get(settings.llm_provider)
    if target is None:
        known = ", ".join(sorted(PROVIDERS))
        raise UnknownProviderError(
            f"Unknown ONEBOX_LLM_PROVIDER {settings.llm_provider!r}; choose one of: {known}"
        )
    return _resolve(target)(settings)
