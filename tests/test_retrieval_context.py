"""What the index sees of a passage: page chrome dropped at parsing, the document title and
heading path added to the indexed text (never to the stored one), passages that fit the
encoder's window."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from onebox.core.settings import Settings
from onebox.documents.ingestion.chunking import chunk_document
from onebox.documents.ingestion.indexing import (
    HEADING_JOINER,
    document_title,
    embed_and_index,
    embedding_text,
)
from onebox.documents.ingestion.parsing import parse_document
from onebox.documents.models import Chunk
from onebox.documents.search.answering import with_sources
from onebox.documents.search.retrieval import Retriever, Source
from onebox.embeddings.base import Embedder, InputKind, Vectors
from onebox.guard.service import Guard
from onebox.llm.base import ChatMessage
from onebox.vectors.edge import EdgeIndex


class RecordingEmbedder(Embedder):
    """Deterministic unit vectors from a hash of the text; keeps what it was asked to embed."""

    dimension = 16

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def embed(self, texts: Sequence[str], *, kind: InputKind = "document") -> Vectors:
        self.seen.extend(texts)
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            row = np.random.default_rng(seed).normal(size=self.dimension)
            rows.append(row / np.linalg.norm(row))
        return np.asarray(rows, dtype=np.float32)


DOCBOOK_PAGE = b"""<!DOCTYPE html><html><head><title>11.6. Unique Indexes</title></head>
<body><div class="navheader"><table><tr><th>11.6. Unique Indexes</th></tr>
<tr><td><a href="a.html">Prev</a></td><td><a href="b.html">Up</a></td>
<th>Chapter 11. Indexes</th><td><a href="index.html">Home</a></td></tr></table></div>
<div class="sect1"><h2>11.6. Unique Indexes</h2>
<p>Indexes can also be used to enforce uniqueness of a column's value.</p></div>
<div role="navigation"><a href="c.html">Next chapter</a></div>
<div class="site-sidebar"><p>Other versions: 16 17</p></div>
<div class="navfooter"><a href="a.html">Prev</a> <a href="b.html">Next</a></div>
</body></html>"""


def test_docbook_and_aria_navigation_is_dropped() -> None:
    parsed = parse_document("unique.html", DOCBOOK_PAGE)
    text = parsed.text
    assert "enforce uniqueness" in text
    assert parsed.title == "11.6. Unique Indexes"
    for chrome in ("Prev", "Home", "Chapter 11", "Next chapter", "Other versions"):
        assert chrome not in text, chrome


def test_navigation_inside_an_article_is_content() -> None:
    page = b"""<html><body><article><h1>Guide</h1>
    <nav class="toc">ignored nav element</nav>
    <div class="breadcrumb">Steps: install, configure, run</div>
    <p>Body text.</p></article></body></html>"""
    text = parse_document("guide.html", page).text
    assert "Steps: install, configure, run" in text
    assert "Body text." in text


def test_class_names_that_merely_contain_nav_are_kept() -> None:
    page = b"""<html><body><div class="canvas-wrapper navigable"><p>Kept one.</p></div>
    <div class="unavailable"><p>Kept two.</p></div></body></html>"""
    text = parse_document("p.html", page).text
    assert "Kept one." in text
    assert "Kept two." in text


def test_embedding_text_names_the_title_and_headings_once() -> None:
    assert embedding_text(["Install", "Linux"], "apt-get it", "Manual") == (
        f"Manual{HEADING_JOINER}Install{HEADING_JOINER}Linux\napt-get it"
    )
    # A title equal to the top heading is not repeated; nothing to add leaves the text alone.
    assert embedding_text(["Manual ", "Linux"], "x", "manual") == f"Manual {HEADING_JOINER}Linux\nx"
    assert embedding_text([], "plain", None) == "plain"
    assert embedding_text([], "plain", "T") == "T\nplain"


@pytest.mark.parametrize(
    ("title", "filename", "expected"),
    [
        ("  The   Guide ", "x.pdf", "The Guide"),
        (None, "reports/q3_sales-report.pdf", "q3 sales-report"),
        ("", ".bashrc", ".bashrc"),
        (None, "C:\\docs\\notes.txt", "notes"),
    ],
)
def test_document_title(title: str | None, filename: str, expected: str) -> None:
    assert document_title(title, filename) == expected


@pytest.mark.anyio
async def test_indexed_text_has_context_but_stored_text_does_not(tmp_path: Path) -> None:
    parsed = parse_document("unique.html", DOCBOOK_PAGE)
    drafts = chunk_document(parsed, size=500, overlap=0)
    embedder = RecordingEmbedder()
    index = EdgeIndex(tmp_path / "edge", auto_optimize=False)
    await index.open(embedder.dimension)
    try:
        rows = await embed_and_index(
            drafts, document_id="d1", collection_id="c1", embedder=embedder, index=index,
            batch_size=8, title=document_title(parsed.title, "unique.html"),
        )  # fmt: skip
        # The keyword side indexes the same text as the encoder.
        hits = await index.search(
            dense=None, text="unique", collection_ids=["c1"], limit=3, mode="keyword"
        )
    finally:
        await index.close()
    assert rows[0].text == drafts[0].text
    assert not rows[0].text.startswith("11.6. Unique Indexes\n11.6")
    assert embedder.seen[0].startswith("11.6. Unique Indexes\n")  # title == heading: named once
    assert [hit.chunk_id for hit in hits] == [rows[0].id]


def _chunk(ordinal: int, text: str, start: int) -> Chunk:
    return Chunk(
        id=f"c{ordinal}", document_id="d", collection_id="k", ordinal=ordinal, text=text,
        page=None, heading_path=[], start_offset=start, end_offset=start + len(text),
    )  # fmt: skip


def test_the_model_reads_the_passage_with_its_neighbours_once() -> None:
    document = "Alpha one. Alpha two. Beta one. Beta two. Gamma one."
    # Chunks overlap by "Alpha two. " and "Beta two. ", as the chunker's overlap makes them.
    first = _chunk(0, document[0:21], 0)
    hit = _chunk(1, document[11:41], 11)
    last = _chunk(2, document[32:], 32)
    retriever = Retriever(Settings(_env_file=None), None, None, Guard(Settings(_env_file=None)))  # type: ignore[arg-type,call-arg]
    neighbours = {("d", 0): first, ("d", 2): last}
    context = retriever._context(hit, hit.text, neighbours)
    assert context == "Alpha one.\n\nAlpha two. Beta one. Beta two.\n\nGamma one."
    assert retriever._context(hit, hit.text, {}) == ""
    source = Source(
        number=1, chunk_id=hit.id, document_id="d", collection_id="k", document="a.txt",
        page=None, heading="", text=hit.text, snippet=hit.text, score=1.0, context=context,
    )  # fmt: skip
    prompt = with_sources([ChatMessage(role="user", content="q")], [source])
    assert "Gamma one." in "".join(str(m.content) for m in prompt)
    assert source.public()["snippet"] == hit.text  # the citation is the passage's own
