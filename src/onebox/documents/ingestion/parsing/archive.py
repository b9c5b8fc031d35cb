"""Turn an upload into the files to ingest, expanding zip archives safely.

Nothing in a zip header is trusted: entry sizes are measured while decompressing, in
bounded chunks, and reading stops the moment a limit is crossed, so a zip bomb costs at most
a limit's worth of memory and time. Anything that could write outside the archive's own
namespace (absolute paths, "..", drive letters, NULs) rejects the whole upload, because such
an archive was crafted, not made by accident.
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, field

from onebox.documents.ingestion.parsing.base import (
    ParseError,
    ParseLimits,
    SourceFile,
    UnsupportedTypeError,
)
from onebox.documents.ingestion.parsing.detect import ZIP, detect_media_type

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_READ_CHUNK = 64 * 1024
# Below this size the compression ratio is not checked: small, very repetitive text files
# (logs, CSV exports) legitimately compress more than 100:1, and the absolute limits still
# bound what such an entry can cost.
RATIO_CHECK_FLOOR_BYTES = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_MB = 1024 * 1024


@dataclass
class ExpandedUpload:
    files: list[SourceFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)


def _size(size: int) -> str:
    if size < _MB:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / _MB:.1f}".removesuffix(".0") + " MB"


def _unsafe_reason(raw_name: str) -> str | None:
    if "\x00" in raw_name:
        return "it contains a NUL character"
    name = raw_name.replace("\\", "/")
    if name.startswith("/"):
        return "it is an absolute path"
    if _DRIVE.match(name):
        return "it starts with a drive letter"
    if ".." in name.split("/"):
        return "it climbs out of the archive with '..'"
    return None


def _normalized(raw_name: str) -> str:
    # Some Windows tools write backslashes; "." and empty segments add nothing.
    parts = [part for part in raw_name.replace("\\", "/").split("/") if part not in ("", ".")]
    return "/".join(parts)


def _ignored(path: str) -> bool:
    """Directories, macOS resource forks and dotfiles (.DS_Store, .git/…) are noise."""
    parts = path.split("/")
    return not path or parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts)


def _single(name: str, data: bytes, limits: ParseLimits) -> ExpandedUpload:
    if len(data) > limits.max_file_bytes:
        raise ParseError(
            f"{name} is {_size(len(data))}; the limit is {_size(limits.max_file_bytes)}"
        )
    return ExpandedUpload(files=[SourceFile(name=name, data=data)])


def _read_entry(
    name: str,
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    limits: ParseLimits,
    *,
    archive_size: int,
    used: int,
) -> bytes:
    """Decompress one entry, measuring as it goes; used is what earlier entries expanded to."""
    entry = f"{name}/{_normalized(info.orig_filename)}"
    # A header may also lie about the compressed size; it cannot exceed the archive itself.
    compressed = min(info.compress_size, archive_size)
    ratio_limit = max(limits.max_zip_ratio * compressed, RATIO_CHECK_FLOOR_BYTES)
    content = bytearray()
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_READ_CHUNK):
                content += chunk
                size = len(content)
                if size > limits.max_file_bytes:
                    raise ParseError(
                        f"{entry} expands to more than {_size(limits.max_file_bytes)}, "
                        f"the limit for one file; the archive was rejected"
                    )
                if size > ratio_limit:
                    raise ParseError(
                        f"{entry} expands more than {limits.max_zip_ratio} times its compressed "
                        f"size (a zip bomb?); the archive was rejected"
                    )
                if used + size > limits.max_zip_total_bytes:
                    raise ParseError(
                        f"{name} expands to more than {_size(limits.max_zip_total_bytes)} in "
                        f"total; the archive was rejected"
                    )
    except NotImplementedError as exc:
        raise ParseError(f"{entry} uses a compression method we cannot read ({exc})") from exc
    except RuntimeError as exc:  # zipfile's way of saying "needs a password"
        raise ParseError(f"{entry} is encrypted (password-protected) ({exc})") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise ParseError(f"{entry} is damaged inside the archive ({exc})") from exc
    return bytes(content)


def _check_entries(name: str, infos: list[zipfile.ZipInfo], limits: ParseLimits) -> None:
    if len(infos) > limits.max_zip_entries:
        raise ParseError(f"{name} has {len(infos)} entries; the limit is {limits.max_zip_entries}")
    for info in infos:
        reason = _unsafe_reason(info.orig_filename)
        if reason is not None:
            raise ParseError(
                f"{name} contains an unsafe entry name {info.orig_filename!r} ({reason}); "
                "the archive was rejected"
            )
    for info in infos:
        if info.flag_bits & 0x1:
            raise ParseError(
                f"{name}/{_normalized(info.orig_filename)} is encrypted (password-protected); "
                "encrypted archives are not supported"
            )


def _expand_zip(name: str, data: bytes, limits: ParseLimits) -> ExpandedUpload:
    if len(data) > limits.max_zip_total_bytes:
        raise ParseError(
            f"{name} is {_size(len(data))}; the limit is {_size(limits.max_zip_total_bytes)}"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise ParseError(f"{name} is damaged or not a valid zip archive ({exc})") from exc
    result = ExpandedUpload()
    with archive:
        infos = archive.infolist()
        _check_entries(name, infos, limits)
        used = 0
        seen: set[str] = set()
        for info in infos:
            path = _normalized(info.orig_filename)
            if info.is_dir() or _ignored(path):
                continue
            entry = f"{name}/{path}"
            if stat.S_ISLNK(info.external_attr >> 16):
                # The "content" of a symlink entry is a path on the uploader's machine.
                result.skipped.append((entry, "symbolic links are not followed"))
                continue
            if entry in seen:
                result.skipped.append((entry, "the archive holds another entry with this name"))
                continue
            seen.add(entry)
            content = _read_entry(name, archive, info, limits, archive_size=len(data), used=used)
            used += len(content)
            try:
                media_type = detect_media_type(entry, content)
            except ParseError as exc:
                result.skipped.append((entry, str(exc)))
                continue
            if media_type == ZIP:
                result.skipped.append((entry, "archives inside archives are not expanded"))
                continue
            result.files.append(SourceFile(name=entry, data=content))
    if not result.files:
        reasons = "; ".join(reason for _, reason in result.skipped[:3])
        detail = f" ({reasons})" if reasons else ""
        # Nothing inside is of a type we ingest, so the archive as a whole is unsupported.
        raise UnsupportedTypeError(f"{name} contains no files that can be ingested{detail}")
    return result


def expand_upload(name: str, data: bytes, limits: ParseLimits) -> ExpandedUpload:
    """One upload → the files to parse. A zip expands; anything else is one file.

    Raises ParseError for a dangerous or damaged archive and for files over the size limit.
    Entries we cannot ingest (images, nested zips, …) are listed in `skipped`, not fatal.
    """
    if not data.startswith(_ZIP_MAGIC) or detect_media_type(name, data) != ZIP:
        return _single(name, data, limits)
    return _expand_zip(name, data, limits)
