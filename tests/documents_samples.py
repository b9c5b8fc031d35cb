"""Build real sample files at test time (PDF, DOCX, zip, PNG) so no binary fixtures are kept."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib

import docx
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    NumberObject,
)

MARKDOWN_GUIDE = (
    "---\ntitle: Front Title\n---\n"
    "# Install\n\nIntro para\nsecond line.\n\n"
    "Linux\n-----\n\n"
    "- one\n- two\n  continued\n\n- three\n\n"
    "```python\n# not a heading\n\nprint(1)\n```\n\n"
    "| a | b |\n|---|:-:|\n| 1 | 2 |\n\n"
    "***\n\n"
    "    indented code\n\n"
    "Setext One\n===\n\n### Deep ###\n"
)

HTML_PAGE = """<!doctype html><html><head><title> The  Page </title>
<style>p { color: red }</style></head><body>
<header><h1>Site name</h1></header><nav><a href="/">Home</a></nav>
<article><header><h1>Article &amp; Title</h1></header>
<p>Hello <b>bold</b>\n world<br>next line</p>
<div>loose <span>inline</span> text</div>
<h2>Steps</h2><ol><li>first</li><li><p>second</p><ul><li>nested</li></ul></li></ol>
<pre>def f():\n    return 1</pre>
<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>
<script>document.write("evil")</script><noscript>enable js</noscript>
</article><aside>ads</aside><footer>copyright</footer></body></html>"""


def pdf_with_pages(pages: list[str]) -> bytes:
    """A real PDF with a text layer: one page per string."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def pdf_with_inflated_page(content_bytes: int, *, in_form: bool = False) -> bytes:
    """One page whose content stream (or a form XObject it draws) inflates to about
    ``content_bytes`` of text operators: a few KB of file that takes the text extractor
    seconds per MB."""
    reader = PdfReader(io.BytesIO(pdf_with_pages(["cover"])))
    writer = PdfWriter(clone_from=reader)
    page = writer.pages[0]
    operator = b"BT /F1 12 Tf 72 712 Td (Hello world) Tj ET\n"
    stream = DecodedStreamObject()
    stream.set_data(operator * (content_bytes // len(operator)))
    compressed = stream.flate_encode()
    if not in_form:
        page[NameObject("/Contents")] = writer._add_object(compressed)
    else:
        resources = page["/Resources"].get_object()
        compressed.update(
            {
                NameObject("/Type"): NameObject("/XObject"),
                NameObject("/Subtype"): NameObject("/Form"),
                NameObject("/BBox"): ArrayObject([NumberObject(n) for n in (0, 0, 612, 792)]),
                NameObject("/Resources"): resources,
            }
        )
        forms = DictionaryObject({NameObject("/Fm0"): writer._add_object(compressed)})
        resources[NameObject("/XObject")] = forms
        drawing = DecodedStreamObject()
        drawing.set_data(b"q /Fm0 Do Q\n")
        page[NameObject("/Contents")] = writer._add_object(drawing)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def nested_html(depth: int) -> bytes:
    """Elements nested ``depth`` deep: the HTML parser's time grows with depth squared."""
    return (
        b"<html><body>" + b"<div>" * depth + b"<p>deep text</p>" + b"</div>" * depth
    ) + b"</body></html>"


def three_page_pdf() -> bytes:
    return pdf_with_pages(
        [f"Page {n} says hello.\nThe alpaca count on page {n} is {n * 7}." for n in (1, 2, 3)]
    )


def encrypted_pdf(user_password: str, owner_password: str | None = None) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(three_page_pdf())))
    # RC4 works without the optional cryptography package (AES needs it).
    writer.encrypt(user_password, owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def image_only_pdf() -> bytes:
    """A page with graphics but no text, like a scan."""
    pdf = FPDF()
    pdf.add_page()
    pdf.set_fill_color(40, 40, 40)
    pdf.rect(20, 20, 120, 160, style="F")
    return bytes(pdf.output())


def sample_docx() -> bytes:
    document = docx.Document()
    document.core_properties.title = "Field Guide"
    document.add_paragraph("Field Guide", style="Title")
    document.add_paragraph("An introduction before any heading.")
    document.add_heading("Install", level=1)
    document.add_paragraph("Installing takes two steps.")
    document.add_heading("Linux", level=2)
    document.add_paragraph("Download the package", style="List Bullet")
    document.add_paragraph("Run the installer", style="List Bullet")
    document.add_paragraph("After the list.")
    table = document.add_table(rows=2, cols=2)
    for row, values in zip(table.rows, (("Name", "Version"), ("onebox", "1.0")), strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_heading("Usage", level=1)
    document.add_paragraph("Open the browser.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def replace_zip_member(data: bytes, member: str, content: bytes) -> bytes:
    """Copy a zip, swapping one member's bytes (to damage a DOCX's XML, for example)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            target.writestr(
                info.filename, content if info.filename == member else source.read(info)
            )
    return out.getvalue()


def make_zip(
    entries: dict[str, bytes],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
    symlinks: dict[str, str] | None = None,
) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return out.getvalue()


def mixed_bundle_zip() -> bytes:
    """Text in folders, a DOCX, things to skip with a reason, and noise to skip silently."""
    return make_zip(
        {
            "docs/": b"",
            "docs/guide.md": b"# Guide\n\ntext",
            "docs\\win.txt": b"windows path",
            "./top.txt": b"top",
            "report.docx": sample_docx(),
            "photo.png": png_bytes(),
            "inner.zip": make_zip({"x.txt": b"x"}),
            "__MACOSX/docs/._guide.md": b"\x00\x05\x16\x07",
            ".DS_Store": b"\x00\x00\x00\x01Bud1",
            ".git/config": b"[core]",
        },
        symlinks={"docs/passwd.txt": "/etc/passwd"},
    )


def xlsx_like_zip() -> bytes:
    return make_zip({"[Content_Types].xml": b"<x/>", "xl/workbook.xml": b"<x/>"})


def odt_like_zip() -> bytes:
    return make_zip({"mimetype": b"application/vnd.oasis.opendocument.text"})


def zip_bomb(megabytes: int, *, entries: int = 1) -> bytes:
    """Each entry holds `megabytes` MB of zeros, written in 1 MB pieces so memory stays small."""
    block = bytes(1024 * 1024)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for index in range(entries):
            with archive.open(f"zeros-{index}.txt", "w") as stream:
                for _ in range(megabytes):
                    stream.write(block)
    return out.getvalue()


def zip_with_claimed_size(data: bytes, size: int) -> bytes:
    """Make the first entry's headers claim an uncompressed size of `size` bytes."""
    patched = bytearray(data)
    local = patched.index(b"PK\x03\x04")
    central = patched.index(b"PK\x01\x02")
    struct.pack_into("<I", patched, local + 22, size)
    struct.pack_into("<I", patched, central + 24, size)
    return bytes(patched)


def zip_with_patched_name(placeholder: str, real: bytes) -> bytes:
    """A zip whose entry name contains bytes zipfile refuses to write (a NUL, say).

    The name is written as a same-length placeholder and then patched in both the local
    header and the central directory, as a hostile tool would produce it.
    """
    assert len(placeholder.encode()) == len(real)
    data = make_zip({placeholder: b"payload"})
    assert data.count(placeholder.encode()) == 2
    return data.replace(placeholder.encode(), real)


def zip_with_encrypted_flag() -> bytes:
    """Set the 'encrypted' general-purpose flag on an entry, as a password-protected zip has."""
    data = bytearray(make_zip({"secret.txt": b"hidden words"}, compression=zipfile.ZIP_STORED))
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    for flag_offset in (local + 6, central + 8):
        (flags,) = struct.unpack_from("<H", data, flag_offset)
        struct.pack_into("<H", data, flag_offset, flags | 0x1)
    return bytes(data)


def zip_with_bad_crc() -> bytes:
    data = bytearray(make_zip({"notes.txt": b"some words " * 50}, compression=zipfile.ZIP_STORED))
    start = data.index(b"some words")
    data[start] = ord("S")
    return bytes(data)


def png_bytes() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def damageable(name: str) -> bytes:
    """A real file of the type that name's extension says, to damage in tests."""
    builders = {
        ".pdf": three_page_pdf,
        ".docx": sample_docx,
        ".zip": mixed_bundle_zip,
        ".html": lambda: HTML_PAGE.encode(),
    }
    return builders[name[name.rindex(".") :]]()


def damaged_copies(data: bytes, *, count: int, seed: int) -> list[bytes]:
    """Deterministic truncations and byte flips of data."""
    copies = []
    state = seed
    for index in range(count):
        state = zlib.crc32(b"%d:%d" % (state, index))
        if index % 3 == 0:
            copies.append(data[: 1 + state % (len(data) - 1)])
            continue
        damaged = bytearray(data)
        for flip in range(1 + state % 8):
            state = zlib.crc32(b"%d" % (state + flip))
            damaged[state % len(damaged)] = state >> 24
        copies.append(bytes(damaged))
    return copies
