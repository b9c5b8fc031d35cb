"""Bad documents get a clear 4xx, or a job that fails alone with a clear reason; the worker
survives and other documents are unaffected."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from onebox.core.settings import Settings
from tests.conftest import AppUnderTest, api_settings
from tests.documents_helpers import by_name, create_collection, upload, wait_for_documents
from tests.documents_samples import encrypted_pdf, image_only_pdf, make_zip, pdf_with_pages

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
GOOD = b"# Notes\n\nThe quarterly review happens in the large meeting room on Fridays.\n"


async def test_unsupported_and_mislabelled_files_are_refused(api: AppUnderTest) -> None:
    collection = await create_collection(api.client)
    for name, data in [("photo.png", PNG), ("report.pdf", PNG), ("empty.txt", b"")]:
        response = await upload(api.client, collection["id"], [(name, data)])
        assert response.status_code == 415, (name, response.text)
        assert name in response.json()["error"]["message"]
    mixed = await upload(api.client, collection["id"], [("photo.png", PNG), ("ok.md", GOOD)])
    assert mixed.status_code == 202
    body = mixed.json()
    assert [d["filename"] for d in body["documents"]] == ["ok.md"]
    assert body["skipped"][0]["filename"] == "photo.png"
    assert "PNG" in body["skipped"][0]["reason"]


async def test_upload_needs_multipart_files(api: AppUnderTest) -> None:
    collection = await create_collection(api.client)
    path = f"/api/collections/{collection['id']}/documents"
    as_json = await api.client.post(path, json={"files": []})
    assert as_json.status_code == 415
    empty = await api.client.post(path, files={"other": ("a.txt", b"hi")})
    assert empty.status_code == 400
    assert "files" in empty.json()["error"]["message"]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return api_settings(
        tmp_path,
        database_url,
        max_upload_bytes=64 * 1024,
        max_zip_total_bytes=256 * 1024,
        max_zip_ratio=50,
    )


async def test_file_over_the_size_limit(api: AppUnderTest) -> None:
    collection = await create_collection(api.client)
    big = b"word " * (70 * 1024 // 5)
    response = await upload(api.client, collection["id"], [("big.txt", big)])
    assert response.status_code == 413
    assert "big.txt" in response.json()["error"]["message"]
    assert "limit" in response.json()["error"]["message"]


async def test_zip_bombs_and_traversal_are_refused(api: AppUnderTest) -> None:
    collection = await create_collection(api.client)
    bomb = make_zip({"zeros.txt": b"0" * (5 * 1024 * 1024)})
    response = await upload(api.client, collection["id"], [("bomb.zip", bomb)])
    assert response.status_code == 422, response.text
    assert "bomb.zip" in response.json()["error"]["message"]
    evil = make_zip({"../../etc/cron.d/evil.txt": b"* * * * * root rm -rf /", "ok.md": GOOD})
    response = await upload(api.client, collection["id"], [("evil.zip", evil)])
    assert response.status_code == 422
    assert "evil.txt" in response.json()["error"]["message"]
    listed = await api.client.get(f"/api/collections/{collection['id']}/documents")
    assert listed.json()["items"] == []


async def test_zip_expands_into_one_document_per_file(api: AppUnderTest) -> None:
    collection = await create_collection(api.client)
    archive = make_zip({"docs/a.md": GOOD, "docs/b.txt": b"Second file text.", "pic.png": PNG})
    response = await upload(api.client, collection["id"], [("bundle.zip", archive)])
    assert response.status_code == 202, response.text
    names = {d["filename"] for d in response.json()["documents"]}
    assert names == {"bundle.zip/docs/a.md", "bundle.zip/docs/b.txt"}
    assert response.json()["skipped"][0]["filename"].endswith("pic.png")
    items = await wait_for_documents(api.client, collection["id"], expected=2)
    assert {item["status"] for item in items} == {"ready"}


async def test_bad_pdfs_fail_alone_with_clear_reasons(api: AppUnderTest) -> None:
    collection = await create_collection(api.client)
    files = [
        ("locked.pdf", encrypted_pdf("hunter2", "owner")),
        ("scan.pdf", image_only_pdf()),
        ("broken.pdf", b"%PDF-1.7\n" + b"\x00garbage" * 50),
        ("good.pdf", pdf_with_pages(["First page about apples.", "Second page about pears."])),
        ("notes.md", GOOD),
    ]
    response = await upload(api.client, collection["id"], files)
    assert response.status_code == 202, response.text
    items = by_name(await wait_for_documents(api.client, collection["id"], expected=5))
    assert items["good.pdf"]["status"] == "ready"
    assert items["good.pdf"]["pages"] == 2
    assert items["notes.md"]["status"] == "ready"
    assert items["locked.pdf"]["status"] == "failed"
    assert "encrypted" in items["locked.pdf"]["error"]
    assert items["scan.pdf"]["status"] == "failed"
    assert "no text" in items["scan.pdf"]["error"]
    assert items["broken.pdf"]["status"] == "failed"
    # A poison document is not retried: it fails on its first attempt.
    assert items["locked.pdf"]["job"]["attempts"] == 1
    found = await api.client.post(
        "/api/search", json={"query": "pears", "collection_ids": [collection["id"]]}
    )
    top = found.json()["sources"][0]
    assert top["document"] == "good.pdf"
    assert top["page"] == 2


async def test_urls_to_internal_addresses_and_odd_schemes_are_refused(api: AppUnderTest) -> None:
    collection = await create_collection(api.client)
    path = f"/api/collections/{collection['id']}/urls"
    for url in [
        "http://127.0.0.1:8000/",
        "http://localhost/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://10.0.0.5/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://2130706433/",
    ]:
        response = await api.client.post(path, json={"url": url})
        assert response.status_code == 400, (url, response.text)
        assert response.json()["error"]["message"]
    listed = await api.client.get(f"/api/collections/{collection['id']}/documents")
    assert listed.json()["items"] == []


def _multipart(filename_header: bytes, data: bytes) -> tuple[bytes, dict[str, str]]:
    """A multipart body written by hand: the filename goes out exactly as given (httpx,
    like browsers, would percent-escape control characters in it)."""
    boundary = b"onebox-test-boundary"
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="files"; ' + filename_header + b"\r\n"
        b"Content-Type: text/markdown\r\n\r\n" + data + b"\r\n--" + boundary + b"--\r\n"
    )
    return body, {"content-type": f"multipart/form-data; boundary={boundary.decode()}"}


@pytest.mark.parametrize(
    ("filename_header", "stored"),
    [
        (b'filename="nul\x00in the\tname.md"', "nulin the name.md"),
        (b'filename="bidi\xe2\x80\xaeand\x01control\x7f.md"', "bidiandcontrol.md"),
        (b'filename="' + b"long" * 100 + b'.md"', "long" * 63 + ".md"),
    ],
)
async def test_upload_names_are_stored_clean(
    api: AppUnderTest, filename_header: bytes, stored: str
) -> None:
    collection = await create_collection(api.client)
    body, headers = _multipart(filename_header, GOOD)
    path = f"/api/collections/{collection['id']}/documents"
    response = await api.client.post(path, content=body, headers=headers)
    assert response.status_code == 202, response.text
    assert [d["filename"] for d in response.json()["documents"]] == [stored]
    items = await wait_for_documents(api.client, collection["id"], expected=1)
    assert items[0]["filename"] == stored
    assert items[0]["status"] == "ready"


async def test_archive_entry_names_are_stored_clean(api: AppUnderTest) -> None:
    collection = await create_collection(api.client)
    bundle = make_zip({"notes/first\nsecond.md": GOOD, "tab\there.md": GOOD + b"more"})
    response = await upload(api.client, collection["id"], [("bundle.zip", bundle)])
    assert response.status_code == 202, response.text
    names = sorted(d["filename"] for d in response.json()["documents"])
    assert names == ["bundle.zip/notes/first second.md", "bundle.zip/tab here.md"]


async def test_chunked_upload_over_its_limit_is_a_413(api: AppUnderTest) -> None:
    collection = await create_collection(api.client)
    # The whole body's limit is four files' worth (64 KB each here), not the JSON limit.
    body, headers = _multipart(b'filename="big.md"', b"word " * (300 * 1024 // 5))

    async def pieces(payload: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 32 * 1024):
            yield payload[start : start + 32 * 1024]

    path = f"/api/collections/{collection['id']}/documents"
    response = await api.client.post(path, content=pieces(body), headers=headers)
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413, response.text
    assert response.json()["error"]["type"] == "payload_too_large"
    fits, headers = _multipart(b'filename="fits.md"', GOOD)
    response = await api.client.post(path, content=pieces(fits), headers=headers)
    assert response.status_code == 202, response.text
    listed = await api.client.get(f"/api/collections/{collection['id']}/documents")
    assert [d["filename"] for d in listed.json()["items"]] == ["fits.md"]
