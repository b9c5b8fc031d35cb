"""Passages that fit the encoder's window, and the collection-level boilerplate pass."""

from __future__ import annotations

from collections import Counter

from onebox.documents.ingestion.boilerplate import (
    DOCUMENTS_KEY,
    MIN_DOCUMENTS,
    common_fingerprints,
    drop_common_lines,
    fingerprint,
    line_fingerprints,
)
from onebox.documents.ingestion.chunking import ChunkDraft, chunk_document, fit_drafts
from onebox.documents.ingestion.indexing import embedding_text
from onebox.documents.ingestion.parsing import Block, ParsedDocument, ParseLimits
from onebox.documents.ingestion.preparing import prepare_document
from onebox.embeddings.local import default_model_path

LONG = " ".join(f"Sentence {i} says something about indexes and vacuum." for i in range(60))


def words(draft: ChunkDraft) -> int:
    return len(draft.text.split())


def test_fit_splits_only_what_does_not_fit_and_keeps_offsets() -> None:
    doc = ParsedDocument(
        "text/plain",
        [Block("heading", "Topic", level=1), Block("paragraph", LONG), Block("paragraph", "x y")],
    )
    drafts = chunk_document(doc, size=5000, overlap=0)
    assert len(drafts) == 1
    fitted = fit_drafts(doc.text, drafts, lambda d: words(d) <= 50)
    assert len(fitted) > 1
    assert all(words(d) <= 50 for d in fitted)
    assert [d.ordinal for d in fitted] == list(range(len(fitted)))
    for draft in fitted:
        assert doc.text[draft.start : draft.end] == draft.text
        assert draft.heading_path == ["Topic"]
    # Nothing lost: the pieces cover the original, in order, without overlap.
    assert " ".join(d.text for d in fitted).split() == drafts[0].text.split()
    assert fit_drafts(doc.text, drafts, lambda d: True) == drafts


def test_fit_keeps_an_uncuttable_run_whole() -> None:
    text = "x" * 30
    draft = ChunkDraft(0, text, None, [], 0, 30)
    assert fit_drafts(text, [draft], lambda d: False) == [draft]


def test_prepared_passages_fit_the_real_tokenizer() -> None:
    from tokenizers import Tokenizer

    file = str(default_model_path() / "tokenizer.json")
    # Identifiers and numbers: many word pieces per character, the case a character size
    # misses.
    data = b"# Tokens\n\n" + b" ".join(
        b"pg_stat_xact_%d_blks=0x%x;" % (i, i * 7919) for i in range(90)
    )
    without = prepare_document("t.md", data, ParseLimits(), 2000, 0)
    fitted = prepare_document("t.md", data, ParseLimits(), 2000, 0, window=(file, 64))
    tokenizer, title = Tokenizer.from_file(file), fitted.title
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def count(draft: ChunkDraft) -> int:
        return len(tokenizer.encode(embedding_text(draft.heading_path, draft.text, title)).ids)

    assert max(count(d) for d in without.drafts) > 64
    assert all(count(d) <= 64 for d in fitted.drafts)
    assert len(fitted.drafts) > len(without.drafts)


def page(body: str) -> ParsedDocument:
    return ParsedDocument(
        "text/html",
        [
            Block("heading", "Parameters", level=2),
            Block("paragraph", f"Skip to content\n{body}\nCopyright 2026 Example Corp"),
            Block("code", "BEGIN;"),
        ],
    )


def test_lines_repeated_across_a_collection_are_dropped_before_chunking() -> None:
    counts: Counter[str] = Counter()
    cleaned = []
    for number in range(6):
        doc = page(f"Body number {number} with its own words.")
        cleaned.append(drop_common_lines(doc, common_fingerprints(counts)))
        counts.update({*line_fingerprints(doc), DOCUMENTS_KEY})
    # The first documents keep their chrome: nothing to compare with yet.
    assert all("Copyright" in doc.text for doc in cleaned[:MIN_DOCUMENTS])
    for doc in cleaned[MIN_DOCUMENTS:]:
        assert "Copyright" not in doc.text
        assert "Skip to content" not in doc.text
        assert "with its own words" in doc.text
        # Headings and code are structure, never boilerplate.
        assert doc.blocks[0].text == "Parameters"
        assert doc.blocks[-1].text == "BEGIN;"
    assert fingerprint("  Copyright 2026   example corp ") == fingerprint(
        "Copyright 2026 Example Corp"
    )


def test_a_line_in_few_documents_is_not_boilerplate() -> None:
    counts = Counter({DOCUMENTS_KEY: 10, fingerprint("rare"): 4, fingerprint("common"): 5})
    assert common_fingerprints(counts) == {fingerprint("common")}
    assert common_fingerprints(Counter({DOCUMENTS_KEY: 2, fingerprint("x"): 2})) == frozenset()


def test_a_document_made_only_of_common_lines_is_kept_whole() -> None:
    doc = ParsedDocument("text/plain", [Block("paragraph", "Skip to content")])
    assert drop_common_lines(doc, frozenset({fingerprint("Skip to content")})) is doc
