"""Structure-aware chunking: exact slices, full coverage, headings, packing, splitting, overlap."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from onebox.documents.ingestion.chunking import ChunkDraft, chunk_document
from onebox.documents.ingestion.parsing import Block, BlockKind, ParsedDocument, parse_document
from tests import documents_samples as samples


def document(*blocks: Block) -> ParsedDocument:
    return ParsedDocument(media_type="text/plain", blocks=list(blocks))


def heading(text: str, level: int = 1) -> Block:
    return Block("heading", text, level=level)


def para(text: str, page: int | None = None) -> Block:
    return Block("paragraph", text, page=page)


def block_starts(doc: ParsedDocument) -> list[int]:
    starts, offset = [], 0
    for block in doc.blocks:
        starts.append(offset)
        offset += len(block.text) + 2
    return starts


def stripped_span(block: Block, start: int) -> tuple[int, int]:
    return start + len(block.text) - len(block.text.lstrip()), start + len(block.text.rstrip())


def check_invariants(
    doc: ParsedDocument, chunks: list[ChunkDraft], size: int, overlap: int, min_lead: int = 0
) -> None:
    """``min_lead``: a short lead may have joined the chunks after it, so a heading may sit
    inside the first chunk, which is named by the headings of one of its parts."""
    text = doc.text
    starts = block_starts(doc)
    covered = bytearray(len(text))
    for index, chunk in enumerate(chunks):
        assert chunk.ordinal == index
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text
        assert chunk.text == chunk.text.strip()
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
        first = max(i for i, s in enumerate(starts) if s <= chunk.start)
        own_start = chunk.start
        if index and chunk.start < chunks[index - 1].end:
            own_start = chunks[index - 1].end
            while text[own_start].isspace():
                own_start += 1
        own_first = max(i for i, s in enumerate(starts) if s <= own_start)
        assert chunk.page == doc.blocks[own_first].page
        own_pages = {
            block.page
            for block, start in zip(doc.blocks, starts, strict=True)
            if block.kind != "heading"
            and text[max(start, own_start) : min(start + len(block.text), chunk.end)].strip()
        }
        assert len(own_pages) <= 1  # a chunk's own text never spans a page break
        # The heading path is the heading stack in force at the end of the chunk.
        stack: list[tuple[int, str]] = []
        stacks: list[list[str]] = [[]]  # the heading stacks in force up to the chunk's end
        for block, start in zip(doc.blocks, starts, strict=True):
            if start < chunk.end and block.kind == "heading" and block.text.strip():
                stack = [h for h in stack if h[0] < block.level] + [(block.level, block.text)]
                stacks.append([title for _, title in stack])
        if min_lead and index == 0 and stacks:
            assert chunk.heading_path in stacks
        else:
            assert chunk.heading_path == [title for _, title in stack]
        overlapped = index > 0 and chunk.start < chunks[index - 1].end
        if overlapped:
            previous = chunks[index - 1]
            assert previous.end - chunk.start <= overlap
            assert text[chunk.start - 1].isspace()  # starts on a word boundary
            assert (min_lead and index == 1) or chunk.heading_path == previous.heading_path
            assert chunk.end - own_start <= size
        elif doc.blocks[first].kind == "heading":
            # Leading headings ride along with the first content, which alone fits `size`.
            content = [
                stripped_span(block, start)[0]
                for block, start in zip(doc.blocks[first:], starts[first:], strict=True)
                if start < chunk.end and block.kind != "heading" and block.text.strip()
            ]
            if content:
                assert chunk.end - content[0] <= size
        else:
            assert len(chunk.text) <= size
        if index:
            assert chunks[index - 1].start < chunk.start
            assert chunks[index - 1].end < chunk.end
    missed = [i for i, char in enumerate(text) if not char.isspace() and not covered[i]]
    assert missed == []
    previous_kind = None
    for block, start in zip(doc.blocks, starts, strict=True):
        if not block.text.strip():
            continue
        span = stripped_span(block, start)
        if span[1] - span[0] <= size:  # a block that fits is never cut
            assert any(c.start <= span[0] and span[1] <= c.end for c in chunks), block
        if block.kind == "heading" and previous_kind not in (None, "heading"):
            # a new section opens a chunk, unless it joined a short opening section
            joined = bool(min_lead) and chunks[0].start < span[0] < chunks[0].end
            assert joined or any(c.start == span[0] for c in chunks)
        previous_kind = block.kind


def test_heading_path_and_heading_attached_to_content() -> None:
    doc = document(
        heading("Install"),
        heading("Linux", 2),
        para("Run the installer."),
        heading("Windows", 2),
        para("Double click."),
        heading("Usage"),
    )
    chunks = chunk_document(doc, size=200, overlap=0)
    assert [(c.text, c.heading_path) for c in chunks] == [
        ("Install\n\nLinux\n\nRun the installer.", ["Install", "Linux"]),
        ("Windows\n\nDouble click.", ["Install", "Windows"]),
        ("Usage", ["Usage"]),
    ]
    check_invariants(doc, chunks, 200, 0)


def reference_page(notes: str = "n" * 150, page: int | None = None) -> ParsedDocument:
    return document(
        heading("TRUNCATE"),
        para("TRUNCATE — empty a table"),
        Block("heading", "Description", level=2, page=page),
        para("TRUNCATE quickly removes all rows from a set of tables.", page=page),
        heading("Notes", 2),
        para(notes),
    )


DESCRIPTION = "Description\n\nTRUNCATE quickly removes all rows from a set of tables."


def test_a_short_opening_section_joins_the_next_one_under_its_headings() -> None:
    doc = reference_page()
    chunks = chunk_document(doc, size=200, overlap=0, min_lead=60)
    assert [(c.text, c.heading_path, c.ordinal) for c in chunks] == [
        (f"TRUNCATE\n\nTRUNCATE — empty a table\n\n{DESCRIPTION}", ["TRUNCATE", "Description"], 0),
        ("Notes\n\n" + "n" * 150, ["TRUNCATE", "Notes"], 1),
    ]
    check_invariants(doc, chunks, 200, 0, 60)
    # Through a synopsis (code alone) to the first section with prose, not beyond it.
    synopsis = document(
        heading("LOCK"),
        para("LOCK — lock a table"),
        heading("Synopsis", 2),
        Block("code", "LOCK [ TABLE ] name [ NOWAIT ]"),
        heading("Description", 2),
        para("LOCK TABLE obtains a table-level lock. With NOWAIT it fails at once."),
        heading("Notes", 2),
        para("Short."),
    )
    chained = chunk_document(synopsis, size=300, overlap=0, min_lead=200)
    assert [(c.text.split("\n\n")[-1], c.heading_path) for c in chained] == [
        ("LOCK TABLE obtains a table-level lock. With NOWAIT it fails at once.",
         ["LOCK", "Description"]),
        ("Short.", ["LOCK", "Notes"]),
    ]  # fmt: skip
    assert chained[0].text.startswith("LOCK\n\nLOCK — lock a table\n\nSynopsis")
    check_invariants(synopsis, chained, 300, 0, 200)


def test_a_short_opening_stays_alone_when_joining_would_not_fit_or_cross_a_page() -> None:
    alone = ["TRUNCATE\n\nTRUNCATE — empty a table", DESCRIPTION, "Notes\n\n" + "n" * 150]
    too_long = chunk_document(reference_page(), size=80, overlap=0, min_lead=60)
    assert [c.text for c in too_long][:2] == alone[:2]
    other_page = chunk_document(reference_page(page=2), size=200, overlap=0, min_lead=60)
    assert [c.text for c in other_page] == alone
    assert [c.text for c in chunk_document(reference_page(), size=200, overlap=0)] == alone
    with pytest.raises(ValueError, match="min_lead"):
        chunk_document(reference_page(), size=200, overlap=0, min_lead=-1)


def test_only_the_opening_section_joins() -> None:
    doc = document(
        para("A long introduction. " * 8),
        heading("copy()"),
        para("Copy data."),
        heading("copy2()"),
        para("Copy data and metadata."),
    )
    chunks = chunk_document(doc, size=300, overlap=0, min_lead=100)
    assert [c.text for c in chunks] == [
        ("A long introduction. " * 8).strip(),
        "copy()\n\nCopy data.",  # short, but a section of its own: a function's entry
        "copy2()\n\nCopy data and metadata.",
    ]
    check_invariants(doc, chunks, 300, 0, 100)
    # A first subsection under the title is an answer of its own, not a lead.
    handbook = document(
        heading("Employee handbook"),
        heading("Holidays", 2),
        para("Twenty-seven days a year."),
        heading("Expenses", 2),
        para("Submit receipts within thirty days."),
    )
    assert [
        c.heading_path for c in chunk_document(handbook, size=300, overlap=0, min_lead=100)
    ] == [
        ["Employee handbook", "Holidays"],
        ["Employee handbook", "Expenses"],
    ]


def test_blocks_are_packed_but_never_cut_when_they_fit() -> None:
    doc = document(para("a" * 40), para("b" * 40), para("c" * 40), para("d" * 90))
    chunks = chunk_document(doc, size=100, overlap=0)
    assert [c.text for c in chunks] == ["a" * 40 + "\n\n" + "b" * 40, "c" * 40, "d" * 90]


def test_oversized_block_splits_at_the_most_natural_boundary() -> None:
    sentences = "One short sentence here. Another one follows it! A third? Yes."
    doc = document(para(f"first paragraph\n\nsecond paragraph\n{sentences}\n" + "x" * 25))
    chunks = chunk_document(doc, size=30, overlap=0)
    assert [c.text for c in chunks] == [
        "first paragraph",
        "second paragraph",
        "One short sentence here.",
        "Another one follows it!",
        "A third? Yes.",
        "x" * 25,
    ]
    long_word = document(para("word " + "y" * 25 + " end"))
    assert [c.text for c in chunk_document(long_word, size=10, overlap=0)] == [
        "word",
        "y" * 10,
        "y" * 10,
        "yyyyy end",
    ]


def test_code_is_split_between_lines() -> None:
    code = "\n".join(f"    value_{i} = compute({i}, other)" for i in range(12))
    doc = document(Block("code", "def f():\n" + code))
    chunks = chunk_document(doc, size=80, overlap=0)
    assert len(chunks) > 3
    lines = set(doc.text.splitlines())
    for chunk in chunks:
        assert all(line in lines or f"    {line}" in lines for line in chunk.text.split("\n"))
    check_invariants(doc, chunks, 80, 0)


def test_overlap_repeats_whole_words_within_a_section_only() -> None:
    words = " ".join(f"word{i:02d}" for i in range(40))
    doc = document(heading("A"), para(words), heading("B"), para(words))
    chunks = chunk_document(doc, size=60, overlap=20)
    check_invariants(doc, chunks, 60, 20)
    continued = [c for p, c in itertools.pairwise(chunks) if c.start < p.end]
    assert continued
    for chunk in continued:
        assert re.match(r"word\d\d ", chunk.text)
    b_first = next(c for c in chunks if c.heading_path == ["B"])
    assert b_first.text.startswith("B\n\nword00")


def test_a_new_page_starts_a_new_chunk() -> None:
    doc = document(para("red apples", page=1), para("pears", page=2), para("plums", page=2))
    chunks = chunk_document(doc, size=1000, overlap=100)
    # The overlap may reach back across the page break; the page is that of the own text.
    assert [(c.text, c.page) for c in chunks] == [
        ("red apples", 1),
        ("apples\n\npears\n\nplums", 2),
    ]


def test_pdf_chunks_keep_page_numbers() -> None:
    doc = parse_document("r.pdf", samples.three_page_pdf())
    chunks = chunk_document(doc, size=60, overlap=10)
    check_invariants(doc, chunks, 60, 10)
    assert sorted({c.page for c in chunks}) == [1, 2, 3]
    for chunk in chunks:
        assert f"page {chunk.page}" in chunk.text.lower()


@pytest.mark.parametrize(
    ("name", "data", "expected_paths"),
    [
        (
            "a.md",
            b"# Install\n\nIntro.\n\n## Linux\n\nApt.\n\n### Debian\n\nDeb.\n\n# Use\n\nGo.",
            [["Install"], ["Install", "Linux"], ["Install", "Linux", "Debian"], ["Use"]],
        ),
        (
            "a.html",
            b"<h1>Install</h1><p>Intro.</p><h2>Linux</h2><ul><li>apt</li></ul><h1>Use</h1>",
            [["Install"], ["Install", "Linux"], ["Use"]],
        ),
        (
            "a.docx",
            samples.sample_docx(),
            [["Field Guide"], ["Install"], ["Install", "Linux"], ["Usage"]],
        ),
    ],
)
def test_heading_paths_of_parsed_documents(
    name: str, data: bytes, expected_paths: list[list[str]]
) -> None:
    doc = parse_document(name, data)
    chunks = chunk_document(doc, size=500, overlap=50)
    assert [c.heading_path for c in chunks] == expected_paths
    check_invariants(doc, chunks, 500, 50)


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_rejects_bad_parameters(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match=r"size|overlap"):
        chunk_document(document(para("x")), size=size, overlap=overlap)


def test_empty_document_has_no_chunks() -> None:
    assert chunk_document(document(), size=10, overlap=0) == []


def _random_text(rng: random.Random) -> str:
    parts: list[str] = []
    for _ in range(rng.randint(1, 40)):
        word_length = rng.choice([1, 3, 5, 8, 12, 60]) if rng.random() < 0.97 else 300
        parts.append("".join(rng.choices("abcdéfgh漢字", k=word_length)))
        parts.append(rng.choice([" ", " ", " ", ". ", "! ", "\n", "\n\n", "\n  \n", "\t"]))
    text = "".join(parts)
    if rng.random() < 0.1:
        text = rng.choice([" ", "\n"]) + text + rng.choice([" ", "\n\n"])
    return text if rng.random() > 0.02 else "   "


def _random_document(rng: random.Random) -> ParsedDocument:
    kinds: list[BlockKind] = ["heading", "paragraph", "list", "code", "table"]
    page = 1
    blocks = []
    for _ in range(rng.randint(0, 25)):
        kind = rng.choices(kinds, weights=[3, 6, 1, 1, 1])[0]
        page += rng.random() < 0.3
        if kind == "heading":
            title = " ".join(rng.choice(["Intro", "Setup", "Über", "API"]) for _ in range(2))
            blocks.append(Block("heading", title, level=rng.randint(1, 4), page=page))
        else:
            blocks.append(Block(kind, _random_text(rng), page=page if rng.random() < 0.8 else None))
    return ParsedDocument(media_type="text/plain", blocks=blocks)


def test_invariants_hold_on_many_generated_documents() -> None:
    rng = random.Random(20240611)  # noqa: S311 - reproducible test data, not security
    for _ in range(400):
        doc = _random_document(rng)
        size = rng.choice([8, 20, 50, 120, 400])
        overlap = rng.choice([0, 0, 1, size // 4, size // 2, size - 1])
        min_lead = rng.choice([0, 0, size // 2, size])
        chunks = chunk_document(doc, size=size, overlap=overlap, min_lead=min_lead)
        check_invariants(doc, chunks, size, overlap, min_lead)
        again = chunk_document(doc, size=size, overlap=overlap, min_lead=min_lead)
        assert again == chunks  # deterministic
