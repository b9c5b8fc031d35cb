"""The model registry's configuration file: YAML and TOML, and clear errors when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from onebox.core.settings import Settings
from onebox.llm.catalog import ModelCatalogError, load_catalog
from tests.test_cli import onebox

YAML = """
default_model: small
models:
  - name: small
    aliases: [default, fast]
    provider: fake
    context_window: 2048
    price: {input_per_1m: 0.1, output_per_1m: 0.4}
    defaults: {temperature: 0.2, max_tokens: 64}
  - name: big
    provider: openai
    upstream_url: http://127.0.0.1:9/v1/
    upstream_model: meta-llama/Llama-3.1-8B-Instruct
    api_key_env: ONEBOX_TEST_UPSTREAM_KEY
    timeouts: {connect: 1, read: 5, total: 30}
    fallbacks: [small]
"""

TOML = """
[[models]]
name = "only"
provider = "fake"
"""


def settings_for(path: Path) -> Settings:
    return Settings(_env_file=None, models_file=path)  # type: ignore[call-arg]


def test_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEBOX_TEST_UPSTREAM_KEY", "sk-secret")
    path = tmp_path / "models.yaml"
    path.write_text(YAML)
    catalog = load_catalog(settings_for(path))
    assert catalog.default == "small"
    small, big = catalog.models
    assert small.aliases == ["default", "fast"]
    assert small.price.cost(1_000_000, 1_000_000) == pytest.approx(0.5)
    assert small.defaults.temperature == 0.2
    assert big.upstream_url == "http://127.0.0.1:9/v1"
    assert big.api_key() == "sk-secret"
    assert "sk-secret" not in repr(big)
    assert big.fallbacks == ["small"]


def test_toml_and_key_file(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(TOML)
    catalog = load_catalog(settings_for(path))
    assert [m.name for m in catalog.models] == ["only"]
    assert catalog.default == "only"


def test_without_a_file_the_settings_make_one_model(tmp_path: Path) -> None:
    catalog = load_catalog(Settings(_env_file=None, model_name="m", llm_provider="fake"))  # type: ignore[call-arg]
    assert [(m.name, m.provider, m.aliases) for m in catalog.models] == [("m", "fake", ["default"])]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("models: []", "models"),
        ("models:\n  - name: a\n    provider: fake\n  - name: a\n    provider: fake\n", "twice"),
        ("models:\n  - name: a\n    provider: fake\n    fallbacks: [zzz]\n", "unknown fallback"),
        ("models:\n  - name: a\n    provider: fake\n    fallbacks: [a]\n", "itself"),
        ("models:\n  - name: a\n    provider: openai\n", "upstream_url"),
        ("models:\n  - name: a\n    provider: fake\n    upstream_url: ftp://x\n", "http"),
        ("models:\n  - name: a\n    provider: fake\n    colour: red\n", "colour"),
        ("default_model: nope\nmodels:\n  - name: a\n    provider: fake\n", "default_model"),
        ("models: [\n", "not valid"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(content)
    with pytest.raises(ModelCatalogError, match=message):
        load_catalog(settings_for(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelCatalogError, match="cannot read"):
        load_catalog(settings_for(tmp_path / "absent.yaml"))


def test_cli_refuses_a_bad_models_file_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  - name: a\n    provider: openai\n")
    result = onebox("db", "upgrade", data_dir=tmp_path / "d", ONEBOX_MODELS_FILE=str(path))
    assert result.returncode == 2
    assert "upstream_url" in result.stderr
    assert "Traceback" not in result.stderr
