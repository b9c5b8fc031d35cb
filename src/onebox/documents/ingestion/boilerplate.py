"""Lines a collection repeats in many of its documents (a site's footer, a copyright notice,
"Skip to content") are boilerplate: dropped before chunking, so they neither fill passages
nor pull every page of a site towards a question that matches them.

Cheap by construction: a document is reduced to the fingerprints of its short text lines
(headings and code excluded: a repeated "Parameters" heading or ``BEGIN;`` is structure, not
chrome); the collection keeps a count of documents per fingerprint (``collection_lines``),
one upsert per ingested document. A line is boilerplate once it was seen in at least
``MIN_DOCUMENTS`` documents and in at least ``MIN_SHARE`` of those the collection counted.
The first few documents of a collection keep theirs: there is nothing to compare yet.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

from onebox.documents.ingestion.parsing.base import Block, ParsedDocument

MIN_DOCUMENTS = 3
MIN_SHARE = 0.5
MAX_LINE_CHARS = 200  # longer lines are prose, not chrome
MAX_FINGERPRINTS = 2000  # per document, so one huge file cannot flood the counts
_KINDS = frozenset({"paragraph", "list", "table"})
# The fingerprint the counts use for "documents counted in this collection".
DOCUMENTS_KEY = "*"


def _norm(line: str) -> str:
    return " ".join(line.split()).casefold()


def fingerprint(line: str) -> str:
    return hashlib.blake2b(_norm(line).encode(), digest_size=8).hexdigest()


def _candidate_lines(block: Block) -> Iterable[str]:
    if block.kind not in _KINDS:
        return ()
    return (line for line in block.text.split("\n") if 0 < len(line.strip()) <= MAX_LINE_CHARS)


def line_fingerprints(doc: ParsedDocument) -> list[str]:
    """Distinct fingerprints of the document's candidate lines, in order of appearance."""
    seen: dict[str, None] = {}
    for block in doc.blocks:
        for line in _candidate_lines(block):
            seen.setdefault(fingerprint(line), None)
            if len(seen) >= MAX_FINGERPRINTS:
                return list(seen)
    return list(seen)


def common_fingerprints(counts: Mapping[str, int]) -> frozenset[str]:
    """The boilerplate among a collection's counts (``DOCUMENTS_KEY`` holds the total)."""
    documents = counts.get(DOCUMENTS_KEY, 0)
    needed = max(MIN_DOCUMENTS, math.ceil(MIN_SHARE * documents))
    return frozenset(
        key for key, count in counts.items() if key != DOCUMENTS_KEY and count >= needed
    )


def drop_common_lines(doc: ParsedDocument, common: frozenset[str]) -> ParsedDocument:
    """The document without its boilerplate lines; a block left empty goes away. Never
    empties a document: if every line is common, it is kept whole."""
    if not common:
        return doc
    blocks: list[Block] = []
    changed = False
    for block in doc.blocks:
        if block.kind not in _KINDS:
            blocks.append(block)
            continue
        lines = block.text.split("\n")
        kept = [
            line
            for line in lines
            if not (0 < len(line.strip()) <= MAX_LINE_CHARS and fingerprint(line) in common)
        ]
        if len(kept) == len(lines):
            blocks.append(block)
            continue
        changed = True
        text = "\n".join(kept).strip()
        if text:
            blocks.append(Block(block.kind, text, block.level, block.page))
    if not changed or not any(b.kind != "heading" for b in blocks):
        return doc
    return ParsedDocument(doc.media_type, blocks, pages=doc.pages, title=doc.title)
