"""``DocumentRepository.neighbours``: exactly the chunks just before and after each given one,
in its own document, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from onebox.core.settings import Settings
from onebox.documents.models import Chunk
from onebox.documents.repository import DocumentRepository
from tests.conftest import AppUnderTest, api_settings
from tests.documents_helpers import create_collection, upload, wait_for_documents

pytestmark = pytest.mark.anyio

TOKEN = "chunk-neighbours-admin-token-" + "x" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _manual(name: str, sections: int) -> bytes:
    parts = [f"# {name}\n"]
    for number in range(sections):
        sentence = f"Section {number} of the {name} explains one setting in its own words. "
        parts.append(f"\n## Part {number}\n\n{sentence * 6}\n")
    return "".join(parts).encode()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return api_settings(tmp_path, database_url, api_token=TOKEN, chunk_size=300, chunk_overlap=0)


async def test_neighbours_are_the_adjacent_chunks_of_the_same_document(
    api: AppUnderTest,
) -> None:
    collection = await create_collection(api.client, "manuals", headers=AUTH)
    files = [("boiler.md", _manual("boiler", 6)), ("heater.md", _manual("heater", 6))]
    await upload(api.client, collection["id"], files, headers=AUTH)
    await wait_for_documents(api.client, collection["id"], expected=2)
    async with api.app.state.onebox.sessionmaker() as session:
        chunks = list(await session.scalars(select(Chunk).order_by(Chunk.ordinal)))
        by_document: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            by_document.setdefault(chunk.document_id, []).append(chunk)
        first, second = by_document.values()
        assert len(first) >= 4
        assert len(second) >= 4
        # The middle of one document and the start of the other: ordinals that exist in
        # both documents, so only the pairing tells the right rows from the wrong ones.
        found = await DocumentRepository(session).neighbours([first[2], second[0]])
        assert await DocumentRepository(session).neighbours([]) == {}

    expected = {
        (first[1].document_id, 1): first[1].id,
        (first[3].document_id, 3): first[3].id,
        (second[1].document_id, 1): second[1].id,
    }
    assert {key: chunk.id for key, chunk in found.items()} == expected
