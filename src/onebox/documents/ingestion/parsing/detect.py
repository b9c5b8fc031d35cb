"""Decide what an uploaded file really is from its bytes, and decode text reliably.

The name is only trusted to tell text formats apart (a CSV and a TXT have the same kind of
bytes); everything else comes from the content, so a renamed photo or a PDF that is really a
text file is reported for what it is instead of failing deep inside a parser.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import PurePosixPath

from charset_normalizer import CharsetMatch, CharsetMatches, from_bytes

from onebox.documents.ingestion.parsing.base import ParseError, UnsupportedTypeError

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ZIP = "application/zip"
HTML = "text/html"
MARKDOWN = "text/markdown"
CSV = "text/csv"
JSON = "application/json"
PLAIN = "text/plain"

SUPPORTED_EXTENSIONS = ".txt .md .html .pdf .docx .csv .json .zip"

_TEXT_EXTENSIONS: dict[str, str] = {
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".mdown": MARKDOWN,
    ".html": HTML,
    ".htm": HTML,
    ".xhtml": HTML,
    ".csv": CSV,
    ".tsv": CSV,
    ".json": JSON,
    ".txt": PLAIN,
    ".text": PLAIN,
}

# Extensions that promise a binary container; text under such a name is a mistake worth
# reporting rather than silently ingesting as something the user did not mean to upload.
_BINARY_EXTENSIONS: dict[str, str] = {
    ".pdf": "a PDF",
    ".docx": "a Word document",
    ".zip": "a zip archive",
}

# (offset, signature, description). Order matters only where signatures share a prefix.
_BINARY_SIGNATURES: list[tuple[int, bytes, str]] = [
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"GIF87a", "a GIF image"),
    (0, b"GIF89a", "a GIF image"),
    (0, b"II*\x00", "a TIFF image"),
    (0, b"MM\x00*", "a TIFF image"),
    (0, b"\x00\x00\x01\x00", "an icon image"),
    (0, b"\x7fELF", "an executable (ELF)"),
    (0, b"\xcf\xfa\xed\xfe", "an executable (Mach-O)"),
    (0, b"\xfe\xed\xfa\xce", "an executable (Mach-O)"),
    (0, b"\xca\xfe\xba\xbe", "a compiled Java class or Mach-O binary"),
    (0, b"\x00asm", "a WebAssembly module"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"\xfd7zXZ\x00", "an xz archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"Rar!\x1a\x07", "a RAR archive"),
    (0, b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (257, b"ustar", "a tar archive"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Microsoft Office file (.doc/.xls/.ppt)"),
    (0, b"{\\rtf", "an RTF document"),
    (0, b"SQLite format 3\x00", "an SQLite database"),
    (0, b"OggS\x00", "an Ogg audio/video file"),
    (0, b"\x1aE\xdf\xa3", "a Matroska/WebM video"),
]
_RIFF_KINDS = {b"WEBP": "a WebP image", b"WAVE": "a WAV audio file", b"AVI ": "an AVI video"}
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")

# Office Open XML and friends are zips too; name the format so the message is actionable.
_ZIP_FORMATS: list[tuple[str, str]] = [
    ("xl/workbook.xml", "an Excel workbook (.xlsx)"),
    ("ppt/presentation.xml", "a PowerPoint presentation (.pptx)"),
    ("visio/document.xml", "a Visio drawing (.vsdx)"),
]
_MIMETYPE_FORMATS: dict[str, str] = {
    "application/epub+zip": "an EPUB e-book",
    "application/vnd.oasis.opendocument.text": "an OpenDocument text file (.odt)",
    "application/vnd.oasis.opendocument.spreadsheet": "an OpenDocument spreadsheet (.ods)",
    "application/vnd.oasis.opendocument.presentation": "an OpenDocument presentation (.odp)",
}

# Control characters other than tab, newline, carriage return and form feed do not appear in
# real text; a decoder that "succeeds" on binary data produces lots of them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_MAX_CONTROL_RATIO = 0.01
_DETECT_BYTES = 256 * 1024  # charset detection on a sample; decoding covers the whole file
_CHAOS_TIE = 0.01
_SAMPLE_CHARS = 65536  # enough to judge; scanning 50 MB character by character is not
_WESTERN_PUNCTUATION = frozenset(
    "\xa0\u2018\u2019\u201a\u201c\u201d\u201e\u2013\u2014\u2026\u2022€£¥¢©®™°±§¶·«»¿¡\xd7÷"
)
# Letters that Windows-1252 shows for Czech ě/ř, Hungarian ő, Turkish dotless i/ş/ğ or Baltic š/ž,
# in places where Western languages do not use them (grave accents inside a word, õ not
# before "e" as in Portuguese "ões", Icelandic letters): text in Windows-1250/1254/1257.
_MISDECODED_TELLS = re.compile(r"[ðþýÐÞÝ]|[ìòùÌÒÙ](?=[^\W\d_])|[õÕ](?![eE])")
_HTML_START = re.compile(
    r"\A\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S
)


def _unsupported(name: str, what: str) -> UnsupportedTypeError:
    return UnsupportedTypeError(f"{name} is {what}; supported: {SUPPORTED_EXTENSIONS}")


def _binary_kind(data: bytes) -> str | None:
    for offset, signature, description in _BINARY_SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            return description
    if data[:4] == b"RIFF" and data[8:12] in _RIFF_KINDS:
        return _RIFF_KINDS[data[8:12]]
    if data[4:8] == b"ftyp":
        return "an MP4/QuickTime/HEIC media file"
    # Short ASCII signatures are checked with the bytes that follow them, so that a text
    # file that happens to start with "ID3" or "fLaC" is not mistaken for audio.
    if data[:3] == b"ID3" and data[3:4] in (b"\x02", b"\x03", b"\x04") and data[4:5] == b"\x00":
        return "an MP3 audio file"
    if data[:4] == b"fLaC" and data[4:5] in (b"\x00", b"\x80"):
        return "a FLAC audio file"
    if _BZIP2.match(data[:10]):
        return "a bzip2 archive"
    # "MZ" alone is too common at the start of text; a real DOS/PE header has NULs right away.
    if data[:2] == b"MZ" and b"\x00" in data[2:64]:
        return "a Windows executable"
    return None


def _zip_kind(name: str, data: bytes) -> str:
    """DOCX or ZIP for containers we ingest; raise for other zip-based formats."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            mimetype = ""
            if "mimetype" in names:
                mimetype = archive.read("mimetype")[:100].decode("ascii", "replace").strip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise ParseError(f"{name} is damaged or not a valid zip archive ({exc})") from exc
    except (NotImplementedError, RuntimeError) as exc:
        raise ParseError(f"{name} cannot be opened as a zip archive ({exc})") from exc
    if "word/document.xml" in names:
        return DOCX
    for marker, description in _ZIP_FORMATS:
        if marker in names:
            raise _unsupported(name, description)
    if mimetype in _MIMETYPE_FORMATS:
        raise _unsupported(name, _MIMETYPE_FORMATS[mimetype])
    if _extension(name) == ".docx":
        raise UnsupportedTypeError(
            f"{name} is not a Word document: it is a zip archive without word/document.xml"
        )
    return ZIP


def _extension(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).suffix.lower()


def _has_readable_text(text: str) -> bool:
    sample = text[:_SAMPLE_CHARS]
    return len(_CONTROL.findall(sample)) <= _MAX_CONTROL_RATIO * max(len(sample), 1)


def _plausible_western(data: bytes) -> str | None:
    """The bytes as Windows-1252 when that reads like Western European text, else None."""
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    sample = text[:_SAMPLE_CHARS]
    letters = accented = 0
    for char in sample:
        if char.isalpha():
            letters += 1
            accented += ord(char) > 127
        elif ord(char) > 127 and char not in _WESTERN_PUNCTUATION:
            return None
    # Accented letters are a minority in Western languages; text in another script read
    # through the wrong single-byte code page is almost all "accented" letters.
    if letters == 0 or accented * 3 > letters or _MISDECODED_TELLS.search(sample):
        return None
    return text


def _detection_sample(data: bytes) -> bytes:
    if len(data) <= _DETECT_BYTES:
        return data
    # Cut at a line end: a newline byte never sits inside a multibyte character in the
    # ASCII-compatible encodings that charset detection proposes.
    sample = data[:_DETECT_BYTES]
    cut = sample.rfind(b"\n")
    return sample[: cut + 1] if cut > 0 else sample


def _preferred(matches: CharsetMatches) -> CharsetMatch | None:
    """The best match, except that a Windows code page wins a tie.

    Detection often cannot tell cp1251 from mac_cyrillic (they differ in a few letters);
    files from Windows are far more common than from classic Mac OS or DOS.
    """
    best = matches.best()
    if best is None:
        return None
    for match in matches:
        if match.chaos <= best.chaos + _CHAOS_TIE and match.encoding.startswith("cp125"):
            return match
    return best


def _decode_legacy(data: bytes) -> str:
    # charset-normalizer often mistakes Western European text for a Central European or
    # Baltic code page (café → cafč, administração → administraçăo); Windows-1252 is by far
    # the most common legacy encoding, so it wins whenever it reads plausibly.
    western = _plausible_western(data)
    if western is not None:
        return western
    sample = _detection_sample(data)
    best = _preferred(from_bytes(sample))
    if best is None:
        raise ParseError("the file is not text in any encoding we recognise")
    if sample is data:
        return str(best)
    try:
        return data.decode(best.encoding)
    except (UnicodeDecodeError, LookupError):
        # The rest of the file disagrees with the sample; let detection see all of it.
        full = from_bytes(data).best()
        if full is None:
            raise ParseError("the file is not text in any encoding we recognise") from None
        return str(full)


def decode_text(data: bytes) -> str:
    """Decode bytes to text: BOMs first, then strict UTF-8, then charset detection.

    Raises ParseError when the bytes do not look like text in any encoding.
    """
    boms = (
        (b"\xef\xbb\xbf", "utf-8"),
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    )
    for bom, encoding in boms:
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise ParseError(f"the text is not valid {encoding} despite its BOM") from exc
            break
    else:
        if b"\x00" in data:
            raise ParseError("the file contains binary data (NUL bytes), not text")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _decode_legacy(data)
    if not _has_readable_text(text):
        raise ParseError("the file contains binary data, not text")
    return text


def _sniff_text(name: str, text: str) -> str:
    by_extension = _TEXT_EXTENSIONS.get(_extension(name))
    if by_extension is not None:
        return by_extension
    if _HTML_START.match(text[:4096]):
        return HTML
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            return PLAIN
        return JSON
    return PLAIN


def detect_media_type(name: str, data: bytes) -> str:
    """Return the media type of an upload, or raise UnsupportedTypeError saying what it is."""
    if not data:
        raise UnsupportedTypeError(f"{name} is empty")
    extension = _extension(name)
    claimed = _BINARY_EXTENSIONS.get(extension)

    # A PDF may legally carry junk before its header, so look a little way in.
    if b"%PDF-" in data[:1024]:
        return PDF
    if data.startswith(_ZIP_MAGIC):
        return _zip_kind(name, data)
    kind = _binary_kind(data)
    if kind is not None:
        if claimed is not None:
            raise _unsupported(name, f"{kind}, not {claimed}")
        raise _unsupported(name, kind)

    try:
        text = decode_text(data)
    except ParseError as exc:
        if claimed is not None:
            raise UnsupportedTypeError(
                f"{name} is not {claimed}: its content is unrecognised binary data"
            ) from exc
        raise UnsupportedTypeError(
            f"{name} is not a supported file: {exc}; supported: {SUPPORTED_EXTENSIONS}"
        ) from exc
    if claimed is not None:
        actual = _sniff_text("", text)
        what = {HTML: "HTML", JSON: "JSON"}.get(actual, "plain text")
        raise UnsupportedTypeError(
            f"{name} is not {claimed}: its content is {what}; "
            f"rename it with the right extension ({SUPPORTED_EXTENSIONS})"
        )
    return _sniff_text(name, text)
