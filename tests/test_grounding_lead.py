"""The quoted support reaches back to its section's first sentence when the passage opens
the section (a reference entry: a name, then its definition), within a length bound."""

from __future__ import annotations

from dataclasses import replace

import pytest

from onebox.documents.ingestion.indexing import HEADING_JOINER
from onebox.documents.search.grounding import LEAD_SPAN_CHARS, ground, with_section_lead
from onebox.documents.search.retrieval import Source
from onebox.embeddings.local import SentenceTransformerEmbedder
from tests.test_grounding import anyio_backend, embedder  # noqa: F401 - module-scoped fixtures

pytestmark = pytest.mark.anyio

COPY2 = """## shutil.copy2()

Copy data and metadata. Return the file's destination.

Metadata is copied with copystat(): the permission bits, the last access and modification
times and the flags go along with the data."""


def _source(text: str, heading: str) -> Source:
    return Source(
        number=1, chunk_id="c1", document_id="d1", collection_id="k", document="shutil.md",
        page=None, heading=heading, text=text, snippet=text[:80], score=0.5,
    )  # fmt: skip


def test_a_detail_is_quoted_from_the_sections_first_sentence() -> None:
    source = _source(COPY2, HEADING_JOINER.join(["shutil", "shutil.copy2()"]))
    detail = (
        "Metadata is copied with copystat(): the permission bits, the last access and "
        "modification times and the flags go along with the data."
    )
    assert with_section_lead(source, detail) == (
        "Copy data and metadata. Return the file's destination. " + detail
    )
    # The first sentence itself, or text that is not one of the passage's sentences.
    assert with_section_lead(source, "Copy data and metadata.") == "Copy data and metadata."
    assert with_section_lead(source, "Something else.") == "Something else."


def test_a_section_after_a_joined_document_opening_is_quoted_from_its_first_sentence() -> None:
    """A document's short opening joins the first entry (``ONEBOX_CHUNK_MIN_LEAD``): the
    entry's heading is then inside the passage, not at its start."""
    text = (
        "# fractions\n\nFraction, infinite-precision, rational numbers.\n\n"
        "## fractions.Fraction\n\nThis class implements rational numbers. "
        "Converts a finite float to a rational number, exactly."
    )
    source = _source(text, HEADING_JOINER.join(["fractions", "fractions.Fraction"]))
    detail = "Converts a finite float to a rational number, exactly."
    assert with_section_lead(source, detail) == f"This class implements rational numbers. {detail}"
    # A sentence before the section's heading is not part of the section.
    opening = "Fraction, infinite-precision, rational numbers."
    assert with_section_lead(source, opening) == opening


def test_a_long_section_opening_is_cut_to_its_first_sentence_and_an_ellipsis() -> None:
    filler = " ".join(f"Sentence {n} describes one more detail of the call." for n in range(9))
    text = f"## os.scandir()\n\nReturn an iterator of directory entries. {filler} Last one here."
    source = _source(text, "os.scandir()")
    quote = with_section_lead(source, "Last one here.")
    assert quote == "Return an iterator of directory entries. … Last one here."
    assert len(quote) <= LEAD_SPAN_CHARS


def test_passages_that_do_not_open_their_section_are_quoted_as_they_are() -> None:
    middle = "Copy data and metadata. Return the file's destination. The flags go along."
    assert with_section_lead(_source(middle, "shutil.copy2()"), "The flags go along.") == (
        "The flags go along."
    )
    assert with_section_lead(_source(COPY2, ""), "Return the file's destination.") == (
        "Return the file's destination."
    )


async def test_ground_quotes_the_detail_with_its_definition(
    embedder: SentenceTransformerEmbedder,  # noqa: F811 - the fixture imported above
) -> None:
    source = _source(COPY2, HEADING_JOINER.join(["shutil", "shutil.copy2()"]))
    question = "Which call copies a file along with its permission bits and modification times?"
    grounding = await ground(embedder, question, [source])
    assert grounding.support
    assert grounding.support[0].text.startswith("Copy data and metadata.")
    assert "permission bits" in grounding.support[0].text
    # No second quote repeats what the first one already holds.
    assert len({s.text for s in grounding.support}) == len(grounding.support)
    plain = await ground(embedder, question, [replace(source, heading="")])
    assert not plain.support[0].text.startswith("Copy data and metadata.")
