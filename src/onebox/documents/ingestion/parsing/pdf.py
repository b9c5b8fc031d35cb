"""PDF text layer into per-page paragraph blocks with pypdf."""

from __future__ import annotations

import io
import re

from pypdf import PageObject, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError
from pypdf.generic import DictionaryObject, IndirectObject, StreamObject

from onebox.documents.ingestion.parsing.base import (
    DEFAULT_MAX_PDF_PAGE_CONTENT_BYTES,
    Block,
    ParsedDocument,
    ParseError,
)
from onebox.documents.ingestion.parsing.text import build_document

_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")
_MB = 1024 * 1024


def _encrypted(name: str) -> ParseError:
    return ParseError(
        f"{name} is encrypted (password-protected); remove the password and upload it again"
    )


def _damaged(name: str, exc: BaseException) -> ParseError:
    """pypdf raises almost anything on hostile or damaged input (NotImplementedError for a
    mangled filter name, ValueError, KeyError, RecursionError…); to the user it all means
    "damaged". Callers re-raise MemoryError first so exhaustion is not disguised as a bad file.
    """
    return ParseError(f"{name} is damaged or not a valid PDF ({type(exc).__name__}: {exc})")


def _page_paragraphs(text: str, page: int) -> list[Block]:
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    cleaned = "\n".join(lines)
    return [
        Block("paragraph", part.strip(), page=page)
        for part in _BLANK_LINES.split(cleaned)
        if part.strip()
    ]


def _open(name: str, data: bytes) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data))
    except (FileNotDecryptedError, DependencyError) as exc:
        raise _encrypted(name) from exc
    except MemoryError:
        raise
    except Exception as exc:
        raise _damaged(name, exc) from exc
    if reader.is_encrypted:
        # Many PDFs are "encrypted" only to restrict printing/copying, with an empty user
        # password; those open fine and are not really protected.
        try:
            decrypted = reader.decrypt("")
        except (DependencyError, NotImplementedError) as exc:
            raise _encrypted(name) from exc
        except MemoryError:
            raise
        except Exception as exc:
            raise _damaged(name, exc) from exc
        if not decrypted:
            raise _encrypted(name)
    return reader


def _title(reader: PdfReader) -> str | None:
    try:
        metadata = reader.metadata
        title = metadata.title if metadata is not None else None
    except MemoryError:
        raise
    except Exception:
        return None
    if not isinstance(title, str):
        return None
    return title.strip() or None


def _content_bytes(page: PageObject, cap: int) -> int:
    """The decompressed size of what reading the page's text interprets: its content
    streams and the form XObjects its resources name (each once), counted until over cap.
    Text extraction time grows faster than this size, and a few KB of compressed file can
    inflate to megabytes of it."""
    contents = page.get_contents()
    total = len(contents.get_data()) if contents is not None else 0
    seen: set[int] = set()
    pending = [page.get("/Resources")]
    while pending and total <= cap:
        resources = pending.pop()
        resources = resources.get_object() if resources is not None else None
        xobjects = resources.get("/XObject") if isinstance(resources, DictionaryObject) else None
        xobjects = xobjects.get_object() if xobjects is not None else None
        if not isinstance(xobjects, DictionaryObject):
            continue
        for reference in xobjects.values():
            key = reference.idnum if isinstance(reference, IndirectObject) else id(reference)
            if key in seen:
                continue
            seen.add(key)
            form = reference.get_object()
            if isinstance(form, StreamObject) and form.get("/Subtype") == "/Form":
                total += len(form.get_data())
                if total > cap:
                    break
                pending.append(form.get("/Resources"))
    return total


def _check_page_size(name: str, number: int, page: PageObject, cap: int) -> None:
    if _content_bytes(page, cap) > cap:
        raise ParseError(
            f"{name}: page {number} inflates to more than {cap / _MB:g} MB of drawing "
            "instructions, the limit per page (reading its text would take minutes); the "
            "file was refused"
        )


def parse_pdf(
    name: str, data: bytes, *, max_page_content_bytes: int = DEFAULT_MAX_PDF_PAGE_CONTENT_BYTES
) -> ParsedDocument:
    reader = _open(name, data)
    blocks: list[Block] = []
    try:
        pages = len(reader.pages)
        for number, page in enumerate(reader.pages, start=1):
            _check_page_size(name, number, page, max_page_content_bytes)
            blocks.extend(_page_paragraphs(page.extract_text() or "", number))
    except (FileNotDecryptedError, DependencyError) as exc:
        raise _encrypted(name) from exc
    except (MemoryError, ParseError):
        raise
    except LimitReachedError as exc:
        raise ParseError(f"{name} holds a part too large to read safely ({exc})") from exc
    except Exception as exc:
        raise _damaged(name, exc) from exc
    if pages == 0:
        raise ParseError(f"{name} is damaged or not a valid PDF (it has no pages)")
    if not blocks:
        raise ParseError(
            f"{name} has no text layer (a scanned or image-only PDF?); OCR is not supported"
        )
    return build_document(name, "application/pdf", blocks, pages=pages, title=_title(reader))
