"""The real client address behind trusted reverse proxies.

``X-Forwarded-For`` (or RFC 7239 ``Forwarded``) is believed only when the direct peer is a
trusted proxy. The list is then walked from the right -- each hop was appended by the proxy to
its right -- skipping trusted proxies; the first untrusted address is the client. Anything left
of it was written by the client and is ignored, so a client cannot choose its address by
sending a forged header. Only one header is honoured (``header=``), the one your proxy writes:
honouring both would let a client forge whichever the proxy does not overwrite.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal

# The client of a request whose real peer the ASGI server hid (see server_rewritten_client).
UNVERIFIED_CLIENT = "unverified"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ProxyHeader = Literal["x-forwarded-for", "forwarded"]
Headers = Mapping[str, str] | Iterable[tuple[bytes, bytes]] | Iterable[tuple[str, str]]


@lru_cache(maxsize=64)
def parse_trusted_proxies(trusted: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """``("10.0.0.0/8", "127.0.0.1", "::1")`` as networks; a bad entry is a configuration
    error (ValueError)."""
    networks: list[IPNetwork] = []
    for entry in trusted:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"invalid trusted proxy {entry!r}: {exc}") from None
    return tuple(networks)


@lru_cache(maxsize=4096)  # on every request, mostly for the same few peers
def parse_ip(value: str) -> IPAddress | None:
    """An address from a header or socket value: ``1.2.3.4``, ``1.2.3.4:5678``, ``::1``,
    ``[2001:db8::1]:443``, quoted forms; IPv4-mapped IPv6 becomes IPv4. None when malformed."""
    value = value.strip().strip('"').strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not value[end + 1 :].startswith(":")):
            return None
        value = value[1:end]
    elif value.count(":") == 1:  # IPv4 with a port
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _header_values(headers: Headers, name: str) -> list[str]:
    items: Iterable[tuple[str | bytes, str | bytes]]
    items = headers.items() if isinstance(headers, Mapping) else headers
    values: list[str] = []
    for key, value in items:
        key_text = key.decode("latin-1") if isinstance(key, bytes) else key
        if key_text.lower() == name:
            values.append(value.decode("latin-1") if isinstance(value, bytes) else value)
    return values


def _forwarded_for(element: str) -> str:
    for pair in element.split(";"):
        name, sep, value = pair.partition("=")
        if sep and name.strip().lower() == "for":
            return value
    return ""  # no for= parameter: a hop we cannot use


def _hops(headers: Headers, header: ProxyHeader) -> list[str]:
    joined = ",".join(_header_values(headers, header))
    if not joined.strip():
        return []
    # Empty list elements are allowed by the HTTP list syntax and mean nothing.
    parts = [part for part in joined.split(",") if part.strip()]
    if header == "forwarded":
        return [_forwarded_for(part) for part in parts]
    return parts


def _trusted(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


_FORWARDING: tuple[ProxyHeader, ...] = ("x-forwarded-for", "forwarded")


def _hop_host(hop: str) -> str:
    """A hop as servers read it: ``[v6]:port`` and ``v4:port`` lose the port."""
    hop = hop.strip().strip('"')
    if hop.startswith("[") and "]" in hop:
        return hop[1 : hop.index("]")]
    return hop.rsplit(":", 1)[0] if hop.count(":") == 1 else hop


def _named_in(host: str, headers: Headers) -> bool:
    address = parse_ip(host)
    for header in _FORWARDING:
        for hop in _hops(headers, header):
            if host in {hop.strip().strip('"'), _hop_host(hop)}:
                return True
            if address is not None and parse_ip(hop) == address:
                return True
    return False


def server_rewritten_client(
    client: Sequence[Any] | None, server: Sequence[Any] | None, headers: Headers
) -> str | None:
    """The address to use instead of ``scope["client"]``, or None to keep it.

    An ASGI server may already have replaced the peer with an address from
    ``X-Forwarded-For``: uvicorn and gunicorn's uvicorn worker do by default for peers in
    ``--forwarded-allow-ips`` (127.0.0.1 unless set), so any local process -- or a local proxy
    relaying a client's header -- could choose its address. Only ONEBOX_TRUSTED_PROXIES may
    vouch for a forwarded address, so: a request that reached a loopback address came from
    this machine, and its peer is that address unless the server reported another loopback
    peer the headers do not name. Elsewhere a peer named by the request's own forwarding
    headers cannot be told from a forged one and becomes :data:`UNVERIFIED_CLIENT`.
    """
    if not any(_header_values(headers, header) for header in _FORWARDING):
        return None  # nothing a server could have rewritten from
    host = str(client[0]) if client else ""
    named = bool(host) and _named_in(host, headers)
    local = str(server[0]) if server else ""
    local_address = parse_ip(local)
    if local_address is not None and local_address.is_loopback:
        peer = parse_ip(host)
        return None if peer is not None and peer.is_loopback and not named else local
    return UNVERIFIED_CLIENT if named else None


def client_ip(
    scope_client_host: str | None,
    headers: Headers,
    trusted_proxies: Sequence[str],
    *,
    header: ProxyHeader = "x-forwarded-for",
) -> str:
    """The client address for ``request.scope["client"][0]`` and the request headers (a
    mapping, or ASGI's list of ``(bytes, bytes)``). Without trusted proxies this is the peer.

    Walking the forwarded list from the right, trusted proxies are skipped; the first other
    valid address is returned. A malformed hop ends the walk: the proxy that reported it is
    the furthest address that can be vouched for and is returned. If every hop is a trusted
    proxy, the leftmost is returned. A peer that is not an IP (e.g. ``testclient``) is returned
    as given; ``""`` when the server did not report one.
    """
    if not scope_client_host:
        return ""
    peer = parse_ip(scope_client_host)
    if peer is None:
        return scope_client_host
    networks = parse_trusted_proxies(tuple(trusted_proxies))
    if not networks or not _trusted(peer, networks):
        return str(peer)
    closest_trusted = peer
    for hop in reversed(_hops(headers, header)):
        address = parse_ip(hop)
        if address is None:
            break
        if not _trusted(address, networks):
            return str(address)
        closest_trusted = address
    return str(closest_trusted)
