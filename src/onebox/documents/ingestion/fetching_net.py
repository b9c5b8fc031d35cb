"""Where a user-supplied URL may lead: scheme, host and every resolved address are checked
before any connection is made (SSRF protection). :mod:`onebox.documents.ingestion.fetching` then
connects to the exact address that passed, so a second DNS answer never matters."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


@dataclass(frozen=True)
class FetchPolicy:
    timeout: float = 20.0  # the whole fetch: every hop, the headers and the body
    max_bytes: int = 50 * 1024 * 1024  # decoded bytes, so compression cannot smuggle more in
    allow_private: bool = False  # intranet deployments; metadata addresses stay blocked
    max_redirects: int = 5
    user_agent: str = "OneboxFetcher/1.0"
    resolver: Resolver | None = None  # host, port -> addresses; None uses the system resolver


class FetchError(Exception):
    """The URL could not be fetched; the message is shown to the user as the reason.
    ``retryable`` is False where asking again cannot help (too large, a 4xx answer)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class BlockedURLError(FetchError):
    """The URL, or a redirect, leads somewhere we refuse to go (scheme, credentials, or an
    address that is not public)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass(frozen=True)
class Target:
    """One hop that passed every check: connect to one of ``addresses``, talk to ``host``."""

    url: httpx.URL
    host: str  # ASCII (IDNA) host, as sent in Host and SNI
    port: int
    addresses: tuple[IPAddress, ...]  # all checked, in the resolver's order of preference

    def pinned_url(self, address: IPAddress) -> httpx.URL:
        return self.url.copy_with(host=str(address))


_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Always refused, whatever allow_private says: these hand out cloud credentials.
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.169.253",  # AWS VPC DNS
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public address, so only this list stops it)
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::253",  # AWS VPC DNS over IPv6
    )
)
# Kinds that no deployment has a reason to fetch from, so allow_private does not open them.
_ALWAYS_BLOCKED = frozenset({"cloud metadata", "unspecified", "multicast", "reserved"})

_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")  # Linux routes these to the local host
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address really reaches (mapped, compatible, NAT64, 6to4)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if (ip in _NAT64 or ip in _IPV4_COMPATIBLE) and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_kind(ip: IPAddress) -> str | None:
    """None for a public unicast address, else what kind of address it is."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return address_kind(embedded)
    if ip in _METADATA_ADDRESSES:
        return "cloud metadata"
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "shared (carrier-grade NAT)"
    if ip.is_reserved:
        return "reserved"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "non-public"
    return None


def refusal(ip: IPAddress, allow_private: bool) -> str | None:
    """Why ``ip`` may not be fetched from under this policy, or None when it may."""
    kind = address_kind(ip)
    if kind is None or (allow_private and kind not in _ALWAYS_BLOCKED):
        return None
    return f"a {kind} address"


def _odd_numeric_host(host: str) -> bool:
    """True for IPv4 written any way but dotted decimal ("2130706433", "0x7f.1", "0177.0.0.1"):
    resolvers read those as addresses, and they only ever serve to slip past filters."""
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return False
    return host != socket.inet_ntoa(packed)


def parse_url(raw: str) -> httpx.URL:
    """The URL as httpx will send it, refused if its form alone is unacceptable. The same
    parsed object is checked and sent, so no two parsers can disagree about the host."""
    text = raw.strip()
    scheme, colon, _ = text.partition(":")
    if not colon or scheme.lower() not in _SCHEMES:
        shown = f"{scheme.lower()}:" if colon and scheme.isascii() and scheme.isalnum() else text
        but = f", not {shown[:60]}" if shown else ""
        raise BlockedURLError(f"Only http:// and https:// URLs can be fetched{but}")
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        host = text.partition("//")[2].split("/", 1)[0].rpartition("@")[2].split(":", 1)[0]
        if _odd_numeric_host(host):
            raise BlockedURLError(
                f"{raw} uses an unusual numeric host; write the host out"
            ) from None
        raise FetchError(f"{raw} is not a valid URL: {exc}") from None
    if url.userinfo:
        raise BlockedURLError(f"{raw} contains credentials; URLs with user:password@ are refused")
    host = url.raw_host.decode("ascii")
    if not host:
        raise FetchError(f"{raw} has no host")
    if _odd_numeric_host(host):
        raise BlockedURLError(f"{raw} uses an unusual numeric host; write the host out")
    if url.port is not None and not 0 < url.port < 65536:
        raise FetchError(f"{raw} has an invalid port {url.port}")
    if host.rstrip(".").lower() in _METADATA_HOSTS:
        raise BlockedURLError(f"{host} is a cloud metadata endpoint")
    return url


async def _system_resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve(url: httpx.URL, policy: FetchPolicy) -> Target:
    """Resolves the host once and checks every answer: one bad address refuses the URL,
    since the connection could otherwise be steered to it."""
    host = url.raw_host.decode("ascii")
    port = url.port or _DEFAULT_PORTS[url.scheme]
    try:
        answers: list[IPAddress] = [ipaddress.ip_address(host.rstrip("."))]
        where = f"{url} points to"
    except ValueError:
        answers = await _lookup(host, port, policy)
        where = f"{host} resolves to"
    for ip in answers:
        reason = refusal(ip, policy.allow_private)
        if reason is not None:
            raise BlockedURLError(f"{where} {ip}, {reason}; fetching it is not allowed")
    return Target(url=url, host=host, port=port, addresses=tuple(answers))


async def _lookup(host: str, port: int, policy: FetchPolicy) -> list[IPAddress]:
    resolver = policy.resolver or _system_resolve
    try:
        raw = await resolver(host, port)
    except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
        raise FetchError(f"Could not resolve host {host}: {exc}") from None
    answers: list[IPAddress] = []
    for text in raw:
        try:
            ip = ipaddress.ip_address(text.partition("%")[0])  # drop an IPv6 scope id
        except ValueError:
            raise FetchError(f"Could not resolve host {host}: bad answer {text!r}") from None
        if ip not in answers:
            answers.append(ip)
    if not answers:
        raise FetchError(f"Could not resolve host {host}: no addresses")
    return answers


async def check_url(url: str, policy: FetchPolicy) -> None:
    """Raises :class:`BlockedURLError` if ``url`` may not be fetched under ``policy``,
    :class:`FetchError` if it is malformed or its host does not resolve."""
    parsed = parse_url(url)
    try:
        async with asyncio.timeout(policy.timeout):
            await resolve(parsed, policy)
    except TimeoutError:
        raise FetchError(f"Could not resolve host {parsed.host} in time") from None
