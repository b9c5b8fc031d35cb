"""Document parsing: type detection, safe upload expansion, and parsers into blocks."""

from onebox.documents.ingestion.parsing.archive import ExpandedUpload, expand_upload
from onebox.documents.ingestion.parsing.base import (
    Block,
    BlockKind,
    ParsedDocument,
    ParseError,
    ParseLimits,
    SourceFile,
    UnsupportedTypeError,
)
from onebox.documents.ingestion.parsing.detect import (
    SUPPORTED_EXTENSIONS,
    decode_text,
    detect_media_type,
)
from onebox.documents.ingestion.parsing.parse import parse_document

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "Block",
    "BlockKind",
    "ExpandedUpload",
    "ParseError",
    "ParseLimits",
    "ParsedDocument",
    "SourceFile",
    "UnsupportedTypeError",
    "decode_text",
    "detect_media_type",
    "expand_upload",
    "parse_document",
]
