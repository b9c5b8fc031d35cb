"""Structure-aware chunking of a parsed document into slices of its text.

Every chunk is a slice `doc.text[start:end]`, so a search hit can always be located in the
source text exactly, and together the chunks cover every non-whitespace character. A heading
starts a new chunk and names it (heading_path); blocks of one section are packed together up
to `size` characters, and a new page also starts a new chunk so cited page numbers are exact;
a block is only cut when it alone is larger than `size`, and then at the most natural
boundary that fits (paragraph, line, sentence, word). A short lead under the title joins what
follows it (see `_join_lead`).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from onebox.documents.ingestion.parsing.base import BLOCK_SEPARATOR, Block, ParsedDocument

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_LINE = re.compile(r"\n\s*")
_SENTENCE = re.compile(r"(?<=[.!?…])\s+")
_WORD = re.compile(r"\s+")
_PROSE_SPLITS = (_PARAGRAPH, _LINE, _SENTENCE, _WORD)
# Code is only cut between lines; the word split is the last resort for a line over `size`.
_CODE_SPLITS = (_PARAGRAPH, _LINE, _WORD)


@dataclass(frozen=True, slots=True)
class ChunkDraft:
    ordinal: int
    text: str
    page: int | None  # page of the first block of the chunk's own text (overlap aside)
    heading_path: list[str]  # outermost heading first
    start: int  # offsets into ParsedDocument.text; text == doc.text[start:end]
    end: int


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    heading: bool
    page: int | None


@dataclass
class _Section:
    heading_path: list[str] = field(default_factory=list)
    pieces: list[_Piece] = field(default_factory=list)
    has_content: bool = False


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split(
    text: str, start: int, end: int, size: int, splits: tuple[re.Pattern[str], ...]
) -> list[tuple[int, int]]:
    """Cut text[start:end] into stripped spans of at most size characters.

    Tries each separator in turn; neighbouring segments are merged back while they fit, so
    a cut only happens where it must.
    """
    start, end = _strip(text, start, end)
    if start >= end:
        return []
    if end - start <= size:
        return [(start, end)]
    for depth, pattern in enumerate(splits):
        segments: list[tuple[int, int]] = []
        position = start
        for match in pattern.finditer(text, start, end):
            segments.append((position, match.start()))
            position = match.end()
        segments.append((position, end))
        if len(segments) == 1:
            continue
        spans: list[tuple[int, int]] = []
        current: tuple[int, int] | None = None
        for segment in segments:
            seg_start, seg_end = _strip(text, *segment)
            if seg_start >= seg_end:
                continue
            if seg_end - seg_start > size:
                if current is not None:
                    spans.append(current)
                    current = None
                spans.extend(_split(text, seg_start, seg_end, size, splits[depth + 1 :]))
            elif current is not None and seg_end - current[0] <= size:
                current = (current[0], seg_end)
            else:
                if current is not None:
                    spans.append(current)
                current = (seg_start, seg_end)
        if current is not None:
            spans.append(current)
        return spans
    # One unbroken run longer than size (a URL, a base64 blob): cut it blindly.
    return [(cut, min(cut + size, end)) for cut in range(start, end, size)]


def _pieces(block: Block, start: int, size: int) -> list[_Piece]:
    splits = _CODE_SPLITS if block.kind == "code" else _PROSE_SPLITS
    text = block.text
    # Split the block on its own text, then shift spans to document offsets.
    return [
        _Piece(start + s, start + e, block.kind == "heading", block.page)
        for s, e in _split(text, 0, len(text), size, splits)
    ]


def _sections(doc: ParsedDocument, size: int) -> tuple[list[_Section], list[int]]:
    sections: list[_Section] = []
    current = _Section()
    stack: list[tuple[int, str]] = []
    starts: list[int] = []
    offset = 0
    for block in doc.blocks:
        starts.append(offset)
        pieces = _pieces(block, offset, size)
        offset += len(block.text) + len(BLOCK_SEPARATOR)
        if block.kind == "heading":
            if current.has_content:
                sections.append(current)
                current = _Section(heading_path=[title for _, title in stack])
            title = " ".join(block.text.split())
            if title:
                level = block.level if block.level > 0 else 1
                stack = [(lvl, t) for lvl, t in stack if lvl < level] + [(level, title)]
                current.heading_path = [t for _, t in stack]
        elif pieces:
            current.has_content = True
        current.pieces.extend(pieces)
    if current.pieces:
        sections.append(current)
    return sections, starts


def _pack(pieces: list[_Piece], size: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    current: list[_Piece] = []
    for piece in pieces:
        # A heading never ends a chunk on its own: it belongs with what follows it. Otherwise
        # pack while it fits, and start afresh on a new page so a chunk's page is exact.
        full = piece.end - current[0].start > size if current else False
        new_page = bool(current) and piece.page != current[-1].page
        if (full or new_page) and not all(p.heading for p in current):
            spans.append((current[0].start, current[-1].end))
            current = []
        current.append(piece)
    if current:
        spans.append((current[0].start, current[-1].end))
    return spans


def _overlap_start(text: str, previous: tuple[int, int], own_start: int, overlap: int) -> int:
    """Start of a continuation chunk: about `overlap` characters back, on a word boundary."""
    start = max(previous[1] - overlap, previous[0] + 1)
    if 0 < start < len(text) and not text[start - 1].isspace():
        while start < own_start and not text[start].isspace():
            start += 1
    while start < own_start and text[start].isspace():
        start += 1
    return min(start, own_start)


def chunk_document(
    doc: ParsedDocument, *, size: int, overlap: int, min_lead: int = 0
) -> list[ChunkDraft]:
    """Cut a parsed document into chunks of about `size` characters (see module docstring).

    A chunk holds at most `size` characters of its own, plus up to `overlap` characters
    repeated from the end of the previous chunk of the same section (and the whitespace
    between them), or plus the section's leading heading text when the first content block
    does not fit beside it. A lead (the opening section, under the title heading or none)
    that is one chunk of under ``min_lead`` characters joins the next chunks, up to the
    first with prose, while it stays that short and both fit in ``size`` (0: never).
    """
    if size < 1:
        raise ValueError("size must be at least 1")
    if not 0 <= overlap < size:
        raise ValueError("overlap must be at least 0 and smaller than size")
    if min_lead < 0:
        raise ValueError("min_lead must be at least 0")
    text = doc.text
    sections, block_starts = _sections(doc, size)
    chunks: list[ChunkDraft] = []
    # The opening may join what follows: a lead under the document's title (or under no
    # heading) that fits in one chunk; a first subsection ("Holidays" under the title)
    # is an answer of its own and stands alone.
    lead_joins = False
    for section in sections:
        previous: tuple[int, int] | None = None
        for own_start, end in _pack(section.pieces, size):
            start = own_start
            if previous is not None and overlap > 0:
                start = _overlap_start(text, previous, own_start, overlap)
            # The page is where the chunk's own text begins, not its borrowed overlap.
            block = bisect.bisect_right(block_starts, own_start) - 1
            chunks.append(
                ChunkDraft(
                    ordinal=len(chunks),
                    text=text[start:end],
                    page=doc.blocks[block].page,
                    heading_path=list(section.heading_path),
                    start=start,
                    end=end,
                )
            )
            previous = (start, end)
        if section is sections[0]:
            lead_joins = len(chunks) == 1 and len(section.heading_path) <= 1
    if not min_lead or len(chunks) < 2 or not lead_joins:
        return chunks

    def page_at(offset: int) -> int | None:
        return doc.blocks[bisect.bisect_right(block_starts, offset) - 1].page

    def prose(chunk: ChunkDraft) -> bool:
        """Whether the chunk holds more than headings and code (a synopsis, a signature)."""
        first = bisect.bisect_right(block_starts, chunk.start) - 1
        last = bisect.bisect_left(block_starts, chunk.end)
        return any(
            block.kind not in ("heading", "code") and block.text.strip()
            for block in doc.blocks[max(first, 0) : last]
        )

    return _join_lead(text, chunks, size, min_lead, page_at, prose)


def _join_lead(
    text: str,
    chunks: list[ChunkDraft],
    size: int,
    min_lead: int,
    page_at: Callable[[int], int | None],
    prose: Callable[[ChunkDraft], bool],
) -> list[ChunkDraft]:
    """A document's short lead (a reference page's one-line summary under its title,
    "TRUNCATE — empty a table or set of tables") joins the chunks after it, through a
    synopsis (code alone) up to the first one with prose, while it stays under ``min_lead``
    characters, both fit in ``size`` and share a page; a module's one-line entries after its
    lead stay entries of their own. Alone, a few words on the page's topic score high
    against any question about it and push the section that answers down. The joined chunk
    is named by the headings of its longest part (the description, not the synopsis
    between); the others' headings are in its text."""
    lead, rest = chunks[0], chunks[1:]
    longest = (lead.end - lead.start, lead.heading_path)
    while rest and (
        lead.end - lead.start < min_lead
        and rest[0].end - lead.start <= size
        and rest[0].start >= lead.end
        # one page, so cited page numbers stay exact (a heading may sit on the one before)
        and rest[0].page == lead.page
        and page_at(rest[0].end - 1) == page_at(lead.end - 1)
    ):
        after = rest.pop(0)
        longest = max(longest, (after.end - after.start, after.heading_path), key=lambda p: p[0])
        lead = replace(after, ordinal=0, text=text[lead.start : after.end], start=lead.start,
                       heading_path=longest[1])  # fmt: skip
        if prose(after):
            break
    return [lead, *(replace(chunk, ordinal=i) for i, chunk in enumerate(rest, start=1))]


def fit_drafts(
    text: str, drafts: list[ChunkDraft], fits: Callable[[ChunkDraft], bool], *, floor: int = 40
) -> list[ChunkDraft]:
    """Splits every draft for which ``fits`` is false (a passage longer than the encoder's
    window, which would be cut silently) at its most natural boundaries, into pieces that
    fit (or reach ``floor`` characters); ordinals are renumbered. ``text`` is the document
    text the drafts slice."""
    out: list[ChunkDraft] = []
    pending = list(reversed(drafts))
    while pending:
        draft = pending.pop()
        length = draft.end - draft.start
        if length <= floor or fits(draft):
            out.append(replace(draft, ordinal=len(out)))
            continue
        size = max(floor, (length * 2) // 3)
        spans = _split(text, draft.start, draft.end, size, _PROSE_SPLITS)
        if len(spans) < 2:  # nothing to cut at: keep it whole rather than loop
            out.append(replace(draft, ordinal=len(out)))
            continue
        pieces = [replace(draft, text=text[s:e], start=s, end=e) for s, e in spans]
        pending.extend(reversed(pieces))
    return out
