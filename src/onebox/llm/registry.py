"""The models this instance serves, by public name or alias, each with its provider."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from onebox.core.settings import Settings
from onebox.llm.base import ChatProvider
from onebox.llm.catalog import Catalog, ModelSpec

if TYPE_CHECKING:
    import httpx

ProviderFactory = Callable[[ModelSpec, Settings, "httpx.AsyncClient"], ChatProvider]

# Config string -> "module:function(spec, settings, http) -> ChatProvider".
PROVIDERS: dict[str, str] = {
    "llamacpp": "onebox.llm.factories:llamacpp",
    "openai": "onebox.llm.factories:openai_compatible",
    "fake": "onebox.llm.factories:fake",
}


class UnknownProviderError(ValueError):
    pass


class UnknownModelError(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"The model {name!r} does not exist")
        self.name = name


def _factory(provider: str) -> ProviderFactory:
    target = PROVIDERS.get(provider)
    if target is None:
        known = ", ".join(sorted(PROVIDERS))
        raise UnknownProviderError(f"Unknown provider {provider!r}; choose one of: {known}")
    module_name, _, attribute = target.partition(":")
    return cast(ProviderFactory, getattr(importlib.import_module(module_name), attribute))


@dataclass(frozen=True)
class ModelEntry:
    spec: ModelSpec
    provider: ChatProvider

    @property
    def name(self) -> str:
        return self.spec.name


class ModelRegistry:
    def __init__(self, entries: list[ModelEntry], default: str) -> None:
        self._entries = {entry.name: entry for entry in entries}
        self._names = {
            public: entry.name for entry in entries for public in (entry.name, *entry.spec.aliases)
        }
        self.default = self._names[default]

    @classmethod
    def build(cls, catalog: Catalog, settings: Settings, http: httpx.AsyncClient) -> ModelRegistry:
        entries = [
            ModelEntry(spec, _factory(spec.provider)(spec, settings, http))
            for spec in catalog.models
        ]
        return cls(entries, catalog.default)

    @classmethod
    def single(cls, provider: ChatProvider, provider_name: str = "custom") -> ModelRegistry:
        """A registry around one ready-made provider (tests, embedding in other apps)."""
        spec = ModelSpec(
            name=provider.model_name,
            aliases=["default"] if provider.model_name != "default" else [],
            provider=provider_name,
            context_window=max(provider.context_size, 256),
        )
        return cls([ModelEntry(spec, provider)], spec.name)

    def resolve(self, name: str | None) -> ModelEntry:
        if name is None:
            return self._entries[self.default]
        canonical = self._names.get(name)
        if canonical is None:
            raise UnknownModelError(name)
        return self._entries[canonical]

    def fallbacks_for(self, entry: ModelEntry) -> list[ModelEntry]:
        return [self.resolve(name) for name in entry.spec.fallbacks]

    def entries(self) -> list[ModelEntry]:
        return list(self._entries.values())

    @property
    def default_entry(self) -> ModelEntry:
        return self._entries[self.default]

    async def start(self) -> None:
        for entry in self._entries.values():
            await entry.provider.start()

    async def close(self) -> None:
        for entry in self._entries.values():
            await entry.provider.close()

    def is_ready(self) -> bool:
        return self.default_entry.provider.is_ready()
