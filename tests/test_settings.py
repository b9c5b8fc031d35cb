from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from onebox.core.secret_strength import estimated_entropy_bits
from onebox.core.settings import Settings

# Made with secrets.token_urlsafe; fixed so a failure is reproducible.
STRONG_KEY = "hV3qN8sZ_x1LrT0bWk4yPe7mUaGc2JfQdRi9oYs6Xn5EzK-BvtHlMw"
STRONG_TOKEN = "Q7fLz2Xc9RkPw4NbHs1TyMvG"


def test_defaults_put_everything_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "d")  # type: ignore[call-arg]
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'd' / 'onebox.db'}"
    assert settings.port == 8000
    assert settings.host == "127.0.0.1"


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    first = settings.effective_secret_key()
    assert len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    again = Settings(_env_file=None, data_dir=tmp_path).effective_secret_key()  # type: ignore[call-arg]
    assert again == first


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ONEBOX_PORT", "9123")
    monkeypatch.setenv("ONEBOX_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ONEBOX_MAX_TOKENS", "64")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.port == 9123
    assert settings.data_dir == tmp_path
    assert settings.max_tokens == 64


@pytest.mark.parametrize("key", [None, "short", "changeme", "x" * 31])
def test_production_refuses_weak_or_missing_secret(key: str | None) -> None:
    with pytest.raises(ValidationError, match="ONEBOX_SECRET_KEY"):
        Settings(_env_file=None, env="production", secret_key=key)  # type: ignore[call-arg]


def test_production_accepts_strong_secrets() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="production",
        secret_key=STRONG_KEY,
        api_token=STRONG_TOKEN,
    )
    assert settings.effective_secret_key() == STRONG_KEY


@pytest.mark.parametrize(
    "key",
    [
        "a" * 36,
        "k" * 48,
        "ab" * 20,
        "password1234" * 3,
        "abcdefghijklmnopqrstuvwxyz0123456789",
        "Tr0ub4dor&3-Tr0ub4dor&3-Tr0ub4dor&3-Tr0ub4dor&3",
    ],
)
def test_production_refuses_low_entropy_secret_keys(key: str) -> None:
    with pytest.raises(ValidationError, match="ONEBOX_SECRET_KEY is too easy to guess") as raised:
        Settings(_env_file=None, env="production", secret_key=key, api_token=STRONG_TOKEN)  # type: ignore[call-arg]
    message = str(raised.value)
    assert "bits of randomness" in message
    assert "secrets.token_urlsafe" in message
    assert key not in message  # the refusal never echoes the secret


def test_production_refuses_a_low_entropy_api_token() -> None:
    with pytest.raises(ValidationError, match="ONEBOX_API_TOKEN is too easy to guess"):
        Settings(_env_file=None, env="production", secret_key=STRONG_KEY, api_token="t" * 32)  # type: ignore[call-arg]


def test_development_keeps_accepting_any_secret(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, secret_key="a" * 36)  # type: ignore[call-arg]
    assert settings.effective_secret_key() == "a" * 36


def test_random_keys_clear_the_entropy_bar() -> None:
    """Keys made the recommended ways pass nearly always (hex keys carry 4 bits a character
    and score lowest); the bars sit well below what they carry."""
    for _ in range(300):
        assert estimated_entropy_bits(secrets.token_urlsafe(48)) >= 250
        assert estimated_entropy_bits(secrets.token_urlsafe(24)) >= 80
        assert estimated_entropy_bits(secrets.token_hex(32)) >= 80
        assert estimated_entropy_bits(str(uuid.uuid4())) >= 80
        assert estimated_entropy_bits(secrets.token_urlsafe(18)) >= 56


def test_production_refuses_an_open_api() -> None:
    with pytest.raises(ValidationError, match="ONEBOX_API_TOKEN"):
        Settings(_env_file=None, env="production", secret_key=STRONG_KEY)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("port", 0),
        ("context_size", 10),
        ("temperature", 5),
        ("parse_cpu_seconds", 0),
        ("parse_memory_bytes", 1024),
        ("parse_max_html_depth", 5000),  # the HTML walker recurses once per level
        ("parse_max_pdf_page_content_bytes", 10),
    ],
)
def test_out_of_range_values_are_refused(name: str, value: int) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"chunk_size": 500, "chunk_overlap": 500}, "CHUNK_OVERLAP"),
        ({"jobs_backend": "celery"}, "Qdrant Edge"),
        ({"vector_backend": "qdrant"}, "ONEBOX_QDRANT_URL"),
        ({"embedding_provider": "openai"}, "ONEBOX_EMBEDDING_BASE_URL"),
        ({"parse_cpu_seconds": 60, "parse_wall_seconds": 30}, "ONEBOX_PARSE_WALL_SECONDS"),
    ],
)
def test_inconsistent_document_settings_are_refused(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, data_dir=tmp_path, **overrides)  # type: ignore[call-arg, arg-type]


def test_scale_out_document_settings_are_accepted(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path,
        jobs_backend="celery",
        vector_backend="qdrant",
        qdrant_url="http://qdrant:6333",
        embedding_provider="openai",
        embedding_base_url="http://tei:8080/v1",
    )
    assert settings.index_dir == tmp_path / "index"
