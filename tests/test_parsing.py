"""Type detection, every parser, and safe zip expansion, on real files built at test time."""

from __future__ import annotations

import hashlib
import json
import tracemalloc

import pytest

from onebox.documents.ingestion.parsing import (
    ParsedDocument,
    ParseError,
    ParseLimits,
    UnsupportedTypeError,
    decode_text,
    detect_media_type,
    expand_upload,
    parse_document,
)
from onebox.documents.ingestion.parsing.docx import parse_docx
from onebox.documents.ingestion.parsing.tabular import CSV_ROWS_PER_BLOCK, parse_json
from tests import documents_samples as samples

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SUPPORTED = "supported: .txt .md .html .pdf .docx .csv .json .zip"
MB = 1024 * 1024
# Deterministic random-looking bytes without NULs: binary garbage that is not obviously binary.
NOISE = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(100)).replace(b"\0", b"\1")


def blocks(doc: ParsedDocument) -> list[tuple[str, str, int]]:
    return [(b.kind, b.text, b.level) for b in doc.blocks]


# --- detection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("a.pdf", samples.three_page_pdf(), "application/pdf"),
        ("a.docx", samples.sample_docx(), DOCX),
        ("a.zip", samples.make_zip({"x.txt": b"hi"}), "application/zip"),
        ("notes.txt", samples.three_page_pdf(), "application/pdf"),  # content wins
        ("a.md", b"# Title\n\ntext", "text/markdown"),
        ("a.txt", b"# Title\n\ntext", "text/plain"),
        ("a.csv", b"a,b\n1,2\n", "text/csv"),
        ("a.json", b'{"a": 1}', "application/json"),
        ("a.html", b"<p>hi</p>", "text/html"),
        ("page", b"<!DOCTYPE html><html><body>x</body></html>", "text/html"),
        ("data", b'[{"a": 1}]', "application/json"),
        ("README", b"[not json", "text/plain"),
    ],
)
def test_detects_type_from_content(name: str, data: bytes, expected: str) -> None:
    assert detect_media_type(name, data) == expected


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("x.txt", b"", "x.txt is empty"),
        ("photo.png", samples.png_bytes(), f"photo.png is a PNG image; {SUPPORTED}"),
        ("photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF", "photo.jpg is a JPEG image"),
        ("anim.gif", b"GIF89a\x01\x00\x01\x00", "anim.gif is a GIF image"),
        ("tool", b"\x7fELF\x02\x01\x01" + bytes(50), "tool is an executable (ELF)"),
        ("setup.exe", b"MZ\x90\x00\x03" + bytes(60), "setup.exe is a Windows executable"),
        ("logs.gz", b"\x1f\x8b\x08\x00" + bytes(20), "logs.gz is a gzip archive"),
        ("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(50), "legacy Microsoft Office"),
        ("report.pdf", samples.png_bytes(), "report.pdf is a PNG image, not a PDF"),
        ("report.pdf", b"just some words", "report.pdf is not a PDF: its content is plain text"),
        ("report.docx", b"<html>hi</html>", "report.docx is not a Word document: its content"),
        ("blob.bin", b"abc\x00\x01\x02def", "contains binary data (NUL bytes)"),
        ("blob.txt", NOISE, "blob.txt is not a supported file: the file is not text"),
        ("report.docx", samples.make_zip({"word/x.xml": b"<x/>"}), "without word/document.xml"),
        (
            "sheet.docx",
            samples.xlsx_like_zip(),
            f"sheet.docx is an Excel workbook (.xlsx); {SUPPORTED}",
        ),
        ("book.odt", samples.odt_like_zip(), "book.odt is an OpenDocument text file (.odt)"),
    ],
)
def test_rejects_unsupported_content_clearly(name: str, data: bytes, message: str) -> None:
    with pytest.raises(UnsupportedTypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        detect_media_type(name, data)


def test_damaged_zip_container_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match=r"a.zip is damaged or not a valid zip archive"):
        detect_media_type("a.zip", b"PK\x03\x04" + b"garbage" * 10)


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Café crème brûlée, naïve façade, déjà vu.", "latin-1"),
        ("Le cœur a ses raisons — « très » bien… 5 €", "cp1252"),
        ("Привет, как дела? Это тестовый текст на русском языке.", "cp1251"),
        ("A administração pública não está preparada. São Paulo cresce.", "cp1252"),
        ("Všechny děti šly do školy, kde se učily česky. Řeka teče přes město.", "cp1250"),
        ("Árvíztűrő tükörfúrógép. A magyar nyelv érdekes.", "cp1250"),
        ("Türkçe çok güzel bir dildir. Çocuklar okula gidiyorlar.", "cp1254"),
        ("".join(f"Строка {i}: это тестовый текст на русском.\n" for i in range(9000)), "cp1251"),
        ("Café crème brûlée, naïve façade, déjà vu.\n" * 9000, "latin-1"),
        ("Hello, naïve wörld ✓ 漢字", "utf-16"),
        ("Hello, naïve wörld ✓ 漢字", "utf-8-sig"),
        ("Hello, naïve wörld ✓ 漢字", "utf-8"),
    ],
)
def test_decodes_text_in_common_encodings(text: str, encoding: str) -> None:
    data = text.encode(encoding)
    assert decode_text(data) == text
    assert parse_document("notes.txt", data).text == text.strip()


def test_utf16_big_endian_with_bom() -> None:
    assert decode_text(b"\xfe\xff" + "Grüße".encode("utf-16-be")) == "Grüße"


# --- text and markdown -------------------------------------------------------------------


def test_markdown_structure() -> None:
    doc = parse_document("guide.md", samples.MARKDOWN_GUIDE.encode())
    assert doc.media_type == "text/markdown"
    assert doc.title == "Front Title"
    assert blocks(doc) == [
        ("heading", "Install", 1),
        ("paragraph", "Intro para\nsecond line.", 0),
        ("heading", "Linux", 2),
        ("list", "- one\n- two\n  continued\n- three", 0),
        ("code", "# not a heading\n\nprint(1)", 0),
        ("table", "a | b\n1 | 2", 0),
        ("code", "indented code", 0),
        ("heading", "Setext One", 1),
        ("heading", "Deep", 3),
    ]


def test_markdown_unclosed_fence_runs_to_end_and_title_from_h1() -> None:
    doc = parse_document("a.md", b"# Top\n\n~~~\ncode\n\n# still code\n")
    assert doc.title == "Top"
    assert blocks(doc) == [("heading", "Top", 1), ("code", "code\n\n# still code", 0)]


def test_plain_text_paragraphs_and_crlf() -> None:
    doc = parse_document("a.txt", b"first line\r\nsame para\r\n\r\n\r\nsecond\fthird")
    assert blocks(doc) == [
        ("paragraph", "first line\nsame para", 0),
        ("paragraph", "second", 0),
        ("paragraph", "third", 0),
    ]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("blank.txt", b" \n\t\n  "),
        ("blank.md", b"---\n\n***\n"),
        ("blank.html", b"<html><script>var x = 1;</script><nav>menu</nav></html>"),
    ],
)
def test_document_without_text_is_rejected(name: str, data: bytes) -> None:
    with pytest.raises(ParseError, match=f"{name} contains no text"):
        parse_document(name, data)


# --- html ----------------------------------------------------------------------------------


def test_html_keeps_text_structure_and_drops_chrome() -> None:
    doc = parse_document("page.html", samples.HTML_PAGE.encode())
    assert doc.title == "The Page"
    assert blocks(doc) == [
        ("heading", "Article & Title", 1),
        ("paragraph", "Hello bold world\nnext line", 0),
        ("paragraph", "loose inline text", 0),
        ("heading", "Steps", 2),
        ("list", "1. first\n2. second\n  - nested", 0),
        ("code", "def f():\n    return 1", 0),
        ("table", "k | v\na | 1", 0),
    ]
    for noise in ("<", "Site name", "Home", "evil", "enable js", "ads", "copyright", "color"):
        assert noise not in doc.text


# --- pdf -----------------------------------------------------------------------------------


def test_pdf_pages_are_kept() -> None:
    doc = parse_document("report.pdf", samples.three_page_pdf())
    assert doc.pages == 3
    assert [b.page for b in doc.blocks] == [1, 2, 3]
    for block in doc.blocks:
        assert f"Page {block.page} says hello." in block.text
        assert f"page {block.page} is {block.page * 7}" in block.text


def test_pdf_with_empty_user_password_opens() -> None:
    doc = parse_document("locked.pdf", samples.encrypted_pdf("", owner_password="owner"))
    assert doc.pages == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (samples.encrypted_pdf("hunter2"), r"secret.pdf is encrypted \(password-protected\)"),
        (samples.image_only_pdf(), r"secret.pdf has no text layer \(a scanned or image-only"),
        (b"%PDF-1.7\n" + b"\x00garbage" * 50, "secret.pdf is damaged or not a valid PDF"),
    ],
)
def test_pdf_failures_are_explained(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_document("secret.pdf", data)


@pytest.mark.parametrize("name", ["cut.pdf", "cut.docx", "cut.zip", "cut.html"])
def test_damaged_files_fail_only_with_parse_error(name: str) -> None:
    """Truncated and bit-flipped copies of real files: parsed, or refused with ParseError."""
    original = samples.damageable(name)
    refused = 0
    for variant in samples.damaged_copies(original, count=80, seed=len(name)):
        try:
            if name.endswith(".zip"):
                expand_upload(name, variant, ParseLimits())
            else:
                parse_document(name, variant)
        except ParseError as exc:
            assert str(exc).startswith(name)  # noqa: PT017 - every message names the file
            refused += 1
    assert refused


# --- docx ----------------------------------------------------------------------------------


def test_docx_headings_lists_and_tables() -> None:
    doc = parse_document("guide.docx", samples.sample_docx())
    assert doc.title == "Field Guide"
    assert blocks(doc) == [
        ("heading", "Field Guide", 1),
        ("paragraph", "An introduction before any heading.", 0),
        ("heading", "Install", 1),
        ("paragraph", "Installing takes two steps.", 0),
        ("heading", "Linux", 2),
        ("list", "- Download the package\n- Run the installer", 0),
        ("paragraph", "After the list.", 0),
        ("table", "Name | Version\nonebox | 1.0", 0),
        ("heading", "Usage", 1),
        ("paragraph", "Open the browser.", 0),
    ]


@pytest.mark.parametrize(
    "data",
    [
        samples.replace_zip_member(samples.sample_docx(), "word/document.xml", b"<w:document"),
        samples.make_zip({"word/document.xml": b"<not-a-package/>"}),
        b"not a zip at all",
    ],
)
def test_damaged_docx_is_a_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError, match=r"broken.docx is damaged or not a valid Word document"):
        parse_docx("broken.docx", data)


# --- csv and json --------------------------------------------------------------------------


def test_csv_rows_carry_their_headers() -> None:
    rows = "\n".join(f'{i};"Name {i}, Jr.";{i * 2}' for i in range(CSV_ROWS_PER_BLOCK + 2))
    doc = parse_document("people.csv", f"id;name;score\n{rows}\n".encode())
    assert [b.kind for b in doc.blocks] == ["table", "table"]
    assert doc.blocks[0].text.splitlines()[1] == "id: 1; name: Name 1, Jr.; score: 2"
    assert doc.blocks[1].text.splitlines() == [
        "id: 10; name: Name 10, Jr.; score: 20",
        "id: 11; name: Name 11, Jr.; score: 22",
    ]


def test_csv_extra_cells_and_empty_values() -> None:
    doc = parse_document("a.csv", b'a,b\n1,,x\n"multi\nline",2\n')
    assert doc.text == "a: 1; column 3: x\na: multi line; b: 2"


def test_csv_with_only_a_header_has_no_text() -> None:
    with pytest.raises(ParseError, match=r"h.csv contains no text: it has a header row but no"):
        parse_document("h.csv", b"a,b,c\n")


def test_json_renders_key_paths() -> None:
    value = {"name": "box", "tags": ["a", "b"], "meta": {"size": 3, "ok": True, "none": None}}
    doc = parse_document("a.json", json.dumps(value).encode())
    expected = "name: box\n\ntags[0]: a\ntags[1]: b\n\nmeta.size: 3\nmeta.ok: true\nmeta.none: null"
    assert doc.text == expected
    assert parse_document("b.json", b"[{}, []]").text == "[0]: {}\n\n[1]: []"
    assert parse_document("c.json", b'"just text"').text == "just text"


def test_invalid_json_reports_line_and_column() -> None:
    with pytest.raises(ParseError, match=r"bad.json is not valid JSON: .* at line 2, column 8"):
        parse_document("bad.json", b'{"a": 1,\n  "b": }')


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deep_json_is_refused(depth: int) -> None:
    with pytest.raises(ParseError, match=r"deep.json is nested"):
        parse_json("deep.json", "[" * depth + "]" * depth)


def test_zip_is_not_parsed_directly() -> None:
    with pytest.raises(ParseError, match="archives are expanded before parsing"):
        parse_document("a.zip", samples.make_zip({"a.txt": b"hi"}))


# --- uploads and zip archives --------------------------------------------------------------


def test_plain_upload_is_one_file_within_the_size_limit() -> None:
    upload = expand_upload("a.txt", b"hello", ParseLimits())
    assert [(f.name, f.data) for f in upload.files] == [("a.txt", b"hello")]
    assert upload.skipped == []
    with pytest.raises(ParseError, match=r"big.txt is 2 MB; the limit is 1 MB"):
        expand_upload("big.txt", b"x" * (2 * MB), ParseLimits(max_file_bytes=MB))


def test_docx_upload_is_not_expanded() -> None:
    upload = expand_upload("guide.docx", samples.sample_docx(), ParseLimits())
    assert [f.name for f in upload.files] == ["guide.docx"]


def test_zip_expands_into_named_files_and_skips_what_it_cannot_ingest() -> None:
    upload = expand_upload("bundle.zip", samples.mixed_bundle_zip(), ParseLimits())
    assert [f.name for f in upload.files] == [
        "bundle.zip/docs/guide.md",
        "bundle.zip/docs/win.txt",
        "bundle.zip/top.txt",
        "bundle.zip/report.docx",
    ]
    assert upload.files[0].data == b"# Guide\n\ntext"
    assert upload.skipped == [
        ("bundle.zip/photo.png", f"bundle.zip/photo.png is a PNG image; {SUPPORTED}"),
        ("bundle.zip/inner.zip", "archives inside archives are not expanded"),
        ("bundle.zip/docs/passwd.txt", "symbolic links are not followed"),
    ]
    parsed = parse_document(upload.files[0].name, upload.files[0].data)
    assert parsed.blocks[0].text == "Guide"


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("../evil.txt", "climbs out of the archive"),
        ("docs/../../evil.txt", "climbs out of the archive"),
        ("..\\..\\evil.txt", "climbs out of the archive"),
        ("/etc/passwd", "absolute path"),
        ("\\windows\\system.ini", "absolute path"),
        ("C:/boot.ini", "drive letter"),
    ],
)
def test_unsafe_entry_names_reject_the_whole_upload(entry: str, reason: str) -> None:
    data = samples.make_zip({"fine.txt": b"ok", entry: b"evil"})
    with pytest.raises(ParseError, match=rf"bad.zip contains an unsafe entry name .*{reason}"):
        expand_upload("bad.zip", data, ParseLimits())


def test_nul_in_entry_name_rejects_the_upload() -> None:
    data = samples.zip_with_patched_name("evilXtxt.md", b"evil\x00txt.md")
    with pytest.raises(
        ParseError, match=r"unsafe entry name 'evil\\x00txt.md' \(it contains a NUL"
    ):
        expand_upload("nul.zip", data, ParseLimits())


def test_too_many_entries() -> None:
    data = samples.make_zip({f"f{i}.txt": b"x" for i in range(6)})
    with pytest.raises(ParseError, match=r"many.zip has 6 entries; the limit is 5"):
        expand_upload("many.zip", data, ParseLimits(max_zip_entries=5))


def test_zip_bomb_is_stopped_early_without_reading_it_all() -> None:
    bomb = samples.zip_bomb(200)
    assert len(bomb) < 500_000
    tracemalloc.start()
    try:
        with pytest.raises(ParseError, match=r"zeros-0.txt expands more than 100 times"):
            expand_upload("bomb.zip", bomb, ParseLimits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 80 * MB


def test_entry_over_the_file_limit_rejects_the_upload() -> None:
    limits = ParseLimits(max_file_bytes=2 * MB, max_zip_ratio=10**6)
    with pytest.raises(ParseError, match=r"zeros-0.txt expands to more than 2 MB, the limit"):
        expand_upload("bomb.zip", samples.zip_bomb(3), limits)


def test_entries_over_the_total_limit_reject_the_upload() -> None:
    limits = ParseLimits(max_file_bytes=3 * MB, max_zip_total_bytes=5 * MB, max_zip_ratio=10**6)
    with pytest.raises(ParseError, match=r"bomb.zip expands to more than 5 MB in total"):
        expand_upload("bomb.zip", samples.zip_bomb(2, entries=3), limits)


def test_header_sizes_are_not_trusted() -> None:
    # The bomb claims its entry is 10 bytes; reading stops at the claim and the CRC fails.
    with pytest.raises(ParseError, match=r"zeros-0.txt is damaged inside the archive"):
        expand_upload(
            "liar.zip", samples.zip_with_claimed_size(samples.zip_bomb(3), 10), ParseLimits()
        )


def test_small_repetitive_files_are_not_mistaken_for_bombs() -> None:
    data = samples.make_zip({"log.txt": b"all quiet\n" * 50_000})  # ratio far above 100
    upload = expand_upload("logs.zip", data, ParseLimits())
    assert [f.name for f in upload.files] == ["logs.zip/log.txt"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            samples.zip_with_encrypted_flag(),
            r"x.zip/secret.txt is encrypted \(password-protected\)",
        ),
        (samples.zip_with_bad_crc(), "x.zip/notes.txt is damaged inside the archive"),
        (b"PK\x03\x04" + bytes(100), "x.zip is damaged or not a valid zip archive"),
    ],
)
def test_bad_archives_are_explained(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        expand_upload("x.zip", data, ParseLimits())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (samples.make_zip({"a.png": samples.png_bytes()}), r"\(x.zip/a.png is a PNG image;"),
        (samples.make_zip({".hidden": b"x", "dir/": b""}), r"can be ingested$"),
        (samples.make_zip({}), r"can be ingested$"),
    ],
)
def test_archive_with_nothing_to_ingest_is_unsupported(data: bytes, message: str) -> None:
    with pytest.raises(UnsupportedTypeError, match=rf"x.zip contains no files that .*{message}"):
        expand_upload("x.zip", data, ParseLimits())
