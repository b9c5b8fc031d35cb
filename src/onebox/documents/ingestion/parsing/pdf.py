"""PDF text layer into per-page paragraph blocks with pypdf."""

from __future__ import annotations

import io
import re

from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

from onebox.documents.ingestion.parsing.base import Block, ParsedDocument, ParseError
from onebox.documents.ingestion.parsing.text import build_document

_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")


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


def parse_pdf(name: str, data: bytes) -> ParsedDocument:
    reader = _open(name, data)
    blocks: list[Block] = []
    try:
        pages = len(reader.pages)
        for number, page in enumerate(reader.pages, start=1):
            blocks.extend(_page_paragraphs(page.extract_text() or "", number))
    except (FileNotDecryptedError, DependencyError) as exc:
        raise _encrypted(name) from exc
    except MemoryError:
        raise
    except Exception as exc:
        raise _damaged(name, exc) from exc
    if pages == 0:
        raise ParseError(f"{name} is damaged or not a valid PDF (it has no pages)")
    if not blocks:
        raise ParseError(
            f"{name} has no text layer (a scanned or image-only PDF?); OCR is not supported"
        )
    return build_document(name, "application/pdf", blocks, pages=pages, title=_title(reader))
