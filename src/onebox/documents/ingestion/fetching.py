"""Fetching user-supplied URLs for ingestion: one page, or the pages a sitemap lists.

Every hop (the URL and each redirect) is parsed, resolved once and checked by
:mod:`onebox.documents.ingestion.fetching_net`; the request then goes to the checked address with the
original Host header and TLS SNI, so a DNS answer that changes between the check and the
connection (rebinding) cannot reach an internal address. One deadline covers the whole
fetch, and the body is counted after decompression, so slow, endless or compressed bodies
all stop at the policy's limits.
"""

from __future__ import annotations

import asyncio
import email.message
import ipaddress
import mimetypes
import re
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from xml.parsers import expat

import httpx

from onebox.documents.ingestion.fetching_net import (
    BlockedURLError,
    FetchError,
    FetchPolicy,
    Target,
    check_url,
    parse_url,
    resolve,
)

__all__ = [
    "BlockedURLError",
    "FetchError",
    "FetchPolicy",
    "Fetched",
    "check_url",
    "fetch_sitemap",
    "fetch_url",
]


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    data: bytes
    content_type: str | None  # the header as sent, parameters (charset) included
    filename: str


async def fetch_url(
    url: str, policy: FetchPolicy, client: httpx.AsyncClient | None = None
) -> Fetched:
    """Fetches ``url`` under ``policy``. A given ``client`` must not use a proxy (the
    proxy, not us, would pick the address); without one a private client is used."""
    try:
        async with asyncio.timeout(policy.timeout):
            if client is not None:
                return await _fetch(url, policy, client)
            async with _client(policy) as own:
                return await _fetch(url, policy, own)
    except TimeoutError:
        raise _timed_out(url, policy) from None


def _client(policy: FetchPolicy) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,  # an environment proxy would connect wherever DNS says
        timeout=policy.timeout,
        # No reuse: a TLS connection verified for one host must not carry another host's
        # request just because both resolved to the same address.
        limits=httpx.Limits(max_keepalive_connections=0),
    )


def _redirect_target(url: httpx.URL, location: str) -> str:
    try:
        return str(url.join(location))
    except httpx.InvalidURL:
        raise FetchError(
            f"{url} redirected to an invalid URL {location[:200]!r}", retryable=False
        ) from None


def _timed_out(url: str, policy: FetchPolicy) -> FetchError:
    return FetchError(f"{url} did not respond within {policy.timeout:g} s")


async def _fetch(url: str, policy: FetchPolicy, client: httpx.AsyncClient) -> Fetched:
    current = url
    for hop in range(policy.max_redirects + 1):
        try:
            target = await resolve(parse_url(current), policy)
        except BlockedURLError as exc:
            if hop:
                raise BlockedURLError(f"Redirect from {url} to {current} refused: {exc}") from None
            raise
        response = await _send(client, target, policy, url)
        try:
            if response.is_redirect:
                current = _redirect_target(target.url, response.headers["location"])
                continue
            if not response.is_success:
                reason = f" {response.reason_phrase}" if response.reason_phrase else ""
                raise FetchError(
                    f"{target.url} answered HTTP {response.status_code}{reason}",
                    # Timeouts and rate limits pass; other client errors stay as they are.
                    retryable=response.status_code >= 500 or response.status_code in (408, 429),
                )
            data = await _read_body(response, policy, url, target)
        finally:
            await response.aclose()
        content_type = response.headers.get("content-type")
        return Fetched(
            url=str(target.url),
            data=data,
            content_type=content_type.strip() if content_type else None,
            filename=filename_for(target.url, response.headers, content_type),
        )
    # A loop (or a chain this long) is how the site is set up; asking again follows it again.
    raise FetchError(f"{url} redirected more than {policy.max_redirects} times", retryable=False)


async def _send(
    client: httpx.AsyncClient, target: Target, policy: FetchPolicy, url: str
) -> httpx.Response:
    """Sends the hop to each checked address in turn until one connects (a dual-stack host
    whose IPv6 route is missing still works), never to an address that was not checked."""
    extensions: dict[str, str] = {}
    if target.url.scheme == "https" and not _is_address(target.host):
        extensions["sni_hostname"] = target.host  # the certificate is checked against it
    headers = {
        "Host": target.url.netloc.decode("ascii"),
        "User-Agent": policy.user_agent,
        "Accept": "*/*",
        "Accept-Encoding": "gzip, deflate",  # the encodings _Inflater decodes with a cap
    }
    why = ""
    for address in target.addresses:
        request = client.build_request(
            "GET", target.pinned_url(address), headers=headers, extensions=extensions
        )
        try:
            return await client.send(request, stream=True, follow_redirects=False)
        except httpx.TimeoutException:
            raise _timed_out(url, policy) from None
        except httpx.ConnectError as exc:
            why = "connection refused" if _refused(exc) else str(exc) or type(exc).__name__
        except httpx.HTTPError as exc:
            raise FetchError(f"Fetching {target.url} failed: {exc or type(exc).__name__}") from None
    raise FetchError(f"Could not connect to {target.host} port {target.port}: {why}")


def _refused(exc: BaseException | None) -> bool:
    """Whether a ConnectionRefusedError lies under ``exc`` (httpx, httpcore and anyio each
    wrap it, the last in an exception group)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ConnectionRefusedError):
            return True
        if isinstance(exc, BaseExceptionGroup):
            return any(_refused(inner) for inner in exc.exceptions)
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.rstrip("."))
    except ValueError:
        return False
    return True


def _too_large(url: str, policy: FetchPolicy) -> FetchError:
    return FetchError(
        f"{url} is larger than the limit of {_size(policy.max_bytes)}", retryable=False
    )


def _size(count: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if count >= scale:
            return f"{count / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} bytes"


async def _read_body(
    response: httpx.Response, policy: FetchPolicy, url: str, target: Target
) -> bytes:
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        inflater = None
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > policy.max_bytes:
            raise _too_large(url, policy)
    elif encoding in ("gzip", "x-gzip", "deflate"):
        inflater = _Inflater(encoding, f"{target.url}")
    else:
        raise FetchError(f"{target.url} sent an unsupported content encoding {encoding!r}")
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            body += inflater.feed(chunk, policy.max_bytes - len(body)) if inflater else chunk
            if len(body) > policy.max_bytes:
                raise _too_large(url, policy)
    except httpx.TimeoutException:
        raise _timed_out(url, policy) from None
    except httpx.HTTPError as exc:
        raise FetchError(f"Reading {target.url} failed: {exc or type(exc).__name__}") from None
    return bytes(body)


class _Inflater:
    """gzip/deflate decoding that never produces more than asked for, so a small compressed
    body cannot expand past the limit in memory before it is counted."""

    def __init__(self, encoding: str, label: str) -> None:
        self._gzip = encoding != "deflate"
        self._wbits = 16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS
        self._inflater = zlib.decompressobj(self._wbits)
        self._started = False
        self._label = label

    def feed(self, data: bytes, room: int) -> bytes:
        """Decodes ``data``; more than ``room`` bytes back means the limit was passed."""
        out = bytearray()
        while data and len(out) <= room:
            if self._inflater.eof:
                if not (self._gzip and data.startswith(b"\x1f\x8b")):
                    break  # trailing bytes after the stream: ignored, as browsers do
                self._inflater = zlib.decompressobj(self._wbits)  # another gzip member
            try:
                out += self._inflater.decompress(data, room + 1 - len(out))
            except zlib.error:
                if self._gzip or self._started:
                    raise FetchError(f"{self._label} sent a corrupt compressed body") from None
                # Some servers send raw deflate without the zlib wrapper the RFC asks for.
                self._wbits = -zlib.MAX_WBITS
                self._inflater = zlib.decompressobj(self._wbits)
                continue
            self._started = True
            data = self._inflater.unconsumed_tail or self._inflater.unused_data
        return bytes(out)


_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')
_EXTENSIONS = {
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/csv": ".csv",
    "application/pdf": ".pdf",
    "application/json": ".json",
    "application/xml": ".xml",
    "text/xml": ".xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}


def filename_for(url: httpx.URL, headers: httpx.Headers, content_type: str | None) -> str:
    """A safe file name: Content-Disposition's, else the last path segment, else the host;
    with an extension from the content type when the name has none."""
    name = ""
    disposition = headers.get("content-disposition")
    if disposition:
        message = email.message.Message()
        message["content-disposition"] = disposition
        name = _sanitize(message.get_filename() or "")
    if not name:
        name = _sanitize(url.path.rstrip("/").rpartition("/")[2])  # .path is decoded
    from_host = not name
    if from_host:
        name = _sanitize(url.host) or "download"
    if from_host or not PurePosixPath(name).suffix:
        media_type = (content_type or "").partition(";")[0].strip().lower()
        extension = _EXTENSIONS.get(media_type) or mimetypes.guess_extension(media_type) or ""
        name += extension
    return name


def _sanitize(name: str) -> str:
    name = name.replace("\\", "/").rpartition("/")[2]  # never a path, whoever sent it
    name = _UNSAFE_NAME.sub("_", name).strip(" .")
    if len(name) > 200:
        suffix = PurePosixPath(name).suffix[:16]
        name = name[: 200 - len(suffix)] + suffix
    return name


# Sitemaps


_MAX_CHILD_SITEMAPS = 50


async def fetch_sitemap(url: str, policy: FetchPolicy, *, max_urls: int) -> list[str]:
    """Up to ``max_urls`` unique http(s) page URLs from the sitemap at ``url``. A sitemap
    index is followed one level down; a child that fails is skipped unless all do. The
    pages themselves are not checked here: each is fetched under ``policy`` later."""
    if max_urls <= 0:
        return []
    kind, locations = await _load_sitemap(url, policy)
    if kind == "urlset":
        return _pages(locations, max_urls, [])
    pages: list[str] = []
    errors: list[FetchError] = []
    children = list(dict.fromkeys(locations))[:_MAX_CHILD_SITEMAPS]
    for child in children:
        if len(pages) >= max_urls:
            break
        try:
            child_kind, child_locations = await _load_sitemap(child, policy)
        except FetchError as exc:
            errors.append(exc)
            continue
        if child_kind == "urlset":  # a nested index is not followed: one level only
            _pages(child_locations, max_urls, pages)
    if errors and len(errors) == len(children):
        raise FetchError(f"None of the sitemaps listed in {url} could be read: {errors[0]}")
    return pages


def _pages(locations: list[str], max_urls: int, pages: list[str]) -> list[str]:
    seen = set(pages)
    for location in locations:
        if len(pages) >= max_urls:
            break
        scheme = location.partition(":")[0].lower()
        if scheme in ("http", "https") and location not in seen:
            seen.add(location)
            pages.append(location)
    return pages


async def _load_sitemap(url: str, policy: FetchPolicy) -> tuple[str, list[str]]:
    fetched = await fetch_url(url, policy)
    data = fetched.data
    if data.startswith(b"\x1f\x8b"):  # a .xml.gz file, not a Content-Encoding
        inflater = _Inflater("gzip", url)
        data = inflater.feed(data, policy.max_bytes)
        if len(data) > policy.max_bytes:
            raise _too_large(url, policy)
    return _parse_sitemap(data, url)


class _Refused(Exception):
    pass


def _parse_sitemap(data: bytes, url: str) -> tuple[str, list[str]]:
    """("urlset" or "sitemapindex", the <loc> of each entry). Sitemaps never need a DTD,
    so any DOCTYPE or entity declaration is refused (billion laughs, XXE)."""
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[str] = []  # local names; stack[0] is the root once parsing starts
    text: list[str] = []
    locations: list[str] = []
    entries = {"urlset": "url", "sitemapindex": "sitemap"}

    def refuse(*_: object) -> None:
        raise _Refused

    def start(name: str, _attributes: dict[str, str]) -> None:
        stack.append(name.rpartition(" ")[2])
        text.clear()

    def end(_name: str) -> None:
        if len(stack) == 3 and stack[2] == "loc" and entries.get(stack[0]) == stack[1]:
            locations.append("".join(text).strip())
        if len(stack) > 1:  # the root stays, to tell what kind of sitemap this was
            stack.pop()

    def characters(data: str) -> None:
        if stack and stack[-1] == "loc":
            text.append(data)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    try:
        parser.Parse(data, True)
    except _Refused:
        raise FetchError(f"{url} declares a DOCTYPE or entities; sitemaps are refused") from None
    except expat.ExpatError as exc:
        raise FetchError(f"{url} is not valid XML: {exc}") from None
    kind = stack[0] if stack else ""
    if kind not in entries:
        raise FetchError(f"{url} is not a sitemap (its root element is <{kind}>)")
    return kind, [location for location in locations if location]
