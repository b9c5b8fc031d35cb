"""Fetching user-supplied URLs against real HTTP(S) servers on loopback: SSRF refusals,
address pinning against DNS rebinding, redirects, the deadline and size limits, sitemaps.

Test host names reach the servers through the policy's injectable resolver; the few tests
that need a *public* address use ``_Internet``, a transport that stands in for the network
by routing one public address to loopback, so nothing ever leaves the machine."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from onebox.documents.ingestion.fetching import (
    BlockedURLError,
    FetchError,
    FetchPolicy,
    check_url,
    fetch_sitemap,
    fetch_url,
)

pytestmark = pytest.mark.anyio

PUBLIC = "93.184.215.14"  # looks like the internet; _Internet routes it to loopback

Route = Callable[["_Handler"], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str, str]] = []  # path, Host, User-Agent
        self.stopping = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up mid-body is what the limit tests are about


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append(
            (self.path, self.headers.get("Host", ""), self.headers.get("User-Agent", ""))
        )
        with suppress(OSError):
            self.server.routes.get(self.path, page(b"nope", status=404))(self)

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def serving(host: str = "127.0.0.1", port: int = 0) -> Iterator[_Server]:
    server = _Server(host, port)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[_Server]:
    with serving() as running:
        yield running


def page(
    body: bytes,
    content_type: str = "text/html; charset=utf-8",
    status: int = 200,
    headers: tuple[tuple[str, str], ...] = (),
) -> Route:
    def route(handler: _Handler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    return route


def redirect(location: str, status: int = 302) -> Route:
    return page(b"", status=status, headers=(("Location", location),))


def drip(handler: _Handler) -> None:
    handler.send_response(200)
    handler.end_headers()
    while not handler.server.stopping.wait(0.2):
        handler.wfile.write(b"x")


def endless(handler: _Handler) -> None:
    handler.send_response(200)
    handler.end_headers()
    while not handler.server.stopping.is_set():
        handler.wfile.write(b"x" * 65536)


def silent(handler: _Handler) -> None:
    handler.server.stopping.wait(10)


class DNS:
    """The policy's resolver: fixed answers per host, or ``then`` answers from the second
    lookup of a host on (a rebinding attacker's DNS)."""

    def __init__(self, answers: dict[str, list[str]], then: dict[str, list[str]] | None = None):
        self.answers, self.then = answers, then or {}
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host in self.then and self.calls.count(host) > 1:
            return self.then[host]
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


def intranet(dns: DNS | None = None, **options: float) -> FetchPolicy:
    return FetchPolicy(allow_private=True, resolver=dns or DNS({}), **options)  # type: ignore[arg-type]


class _Internet(httpx.AsyncBaseTransport):
    """Connects to ``PUBLIC`` by connecting to loopback instead; any other address fails."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.addresses: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.addresses.append(request.url.host)
        if request.url.host != PUBLIC:
            raise httpx.ConnectError("unreachable from the test machine")
        request.url = request.url.copy_with(host="127.0.0.1")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


# Fetching


async def test_fetch_connects_to_the_checked_address_with_the_original_host(
    server: _Server,
) -> None:
    server.routes["/docs/guide"] = page(b"<h1>Guide</h1>")
    dns = DNS({"docs.test": ["127.0.0.1"]})
    fetched = await fetch_url(f"http://docs.test:{server.port}/docs/guide", intranet(dns))
    assert fetched.data == b"<h1>Guide</h1>"
    assert fetched.url == f"http://docs.test:{server.port}/docs/guide"
    assert fetched.content_type == "text/html; charset=utf-8"
    assert fetched.filename == "guide.html"
    assert server.requests == [("/docs/guide", f"docs.test:{server.port}", "OneboxFetcher/1.0")]
    assert dns.calls == ["docs.test"]


@pytest.mark.parametrize(
    ("path", "headers", "content_type", "expected"),
    [
        ("/d", (("Content-Disposition", 'attachment; filename="../x/Q3 report.pdf"'),), "application/pdf", "Q3 report.pdf"),
        ("/d", (("Content-Disposition", "attachment; filename*=UTF-8''na%C3%AFve%3F.txt"),), "text/plain", "naïve_.txt"),
        ("/files/notes%20v2.md", (), "text/markdown", "notes v2.md"),
        ("/files/readme", (), "text/plain; charset=utf-8", "readme.txt"),
        ("/", (), "text/html", "docs.test.html"),
        ("/docs/", (), "application/pdf", "docs.pdf"),
    ],
)  # fmt: skip
async def test_filename(
    server: _Server,
    path: str,
    headers: tuple[tuple[str, str], ...],
    content_type: str,
    expected: str,
) -> None:
    server.routes[path] = page(b"data", content_type, headers=headers)
    dns = DNS({"docs.test": ["127.0.0.1"]})
    fetched = await fetch_url(f"http://docs.test:{server.port}{path}", intranet(dns))
    assert fetched.filename == expected


async def test_gzip_encoded_body_is_decoded(server: _Server) -> None:
    body = b"<p>compressed</p>" * 1000
    encoded = (("Content-Encoding", "gzip"),)
    server.routes["/z"] = page(gzip.compress(body), headers=encoded)
    fetched = await fetch_url(f"http://127.0.0.1:{server.port}/z", intranet())
    assert fetched.data == body


async def test_redirects_are_followed_and_every_hop_resolved(server: _Server) -> None:
    server.routes["/start"] = redirect("/hop", 301)
    server.routes["/hop"] = redirect(f"http://other.test:{server.port}/end?x=1", 307)
    server.routes["/end?x=1"] = page(b"arrived", "text/plain")
    dns = DNS({"docs.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    fetched = await fetch_url(f"http://docs.test:{server.port}/start", intranet(dns))
    assert fetched.data == b"arrived"
    assert fetched.url == f"http://other.test:{server.port}/end?x=1"
    assert dns.calls == ["docs.test", "docs.test", "other.test"]
    assert [host for _, host, _ in server.requests][-1] == f"other.test:{server.port}"


async def test_too_many_redirects(server: _Server) -> None:
    server.routes["/loop"] = redirect("/loop")
    with pytest.raises(FetchError, match="redirected more than 2 times") as caught:
        await fetch_url(f"http://127.0.0.1:{server.port}/loop", intranet(max_redirects=2))
    assert len(server.requests) == 3
    assert not caught.value.retryable  # the loop is how the site is set up: never retried


async def test_redirect_to_loopback_is_refused_before_connecting(server: _Server) -> None:
    with serving() as internal:
        server.routes["/go"] = redirect(f"http://127.0.0.1:{internal.port}/admin")
        internet = _Internet()
        dns = DNS({"public.test": [PUBLIC]})
        policy = FetchPolicy(resolver=dns)
        async with httpx.AsyncClient(transport=internet, follow_redirects=True) as client:
            with pytest.raises(BlockedURLError, match=r"Redirect .* to http://127\.0\.0\.1:"):
                await fetch_url(f"http://public.test:{server.port}/go", policy, client)
        assert internet.addresses == [PUBLIC]  # the checked address, not a fresh lookup
        assert server.requests == [("/go", f"public.test:{server.port}", "OneboxFetcher/1.0")]
        assert internal.requests == []


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/", "file:///etc/passwd", "gopher://127.0.0.1/"],
)
async def test_redirect_to_metadata_or_other_schemes_is_refused(
    server: _Server, location: str
) -> None:
    server.routes["/go"] = redirect(location)
    with pytest.raises(BlockedURLError, match="Redirect"):
        await fetch_url(f"http://127.0.0.1:{server.port}/go", intranet())


async def test_dns_rebinding_cannot_move_the_connection(server: _Server) -> None:
    server.routes["/"] = page(b"good", "text/plain")
    with ExitStack() as stack:
        try:
            other = stack.enter_context(serving("127.0.0.2", server.port))
        except OSError:
            pytest.skip("cannot listen on 127.0.0.2")
        other.routes["/"] = page(b"bad", "text/plain")
        dns = DNS({"rebind.test": ["127.0.0.1"]}, then={"rebind.test": ["127.0.0.2"]})
        fetched = await fetch_url(f"http://rebind.test:{server.port}/", intranet(dns))
        assert fetched.data == b"good"
        assert dns.calls == ["rebind.test"]
        assert other.requests == []


async def test_next_checked_address_is_tried_when_one_refuses(server: _Server) -> None:
    server.routes["/"] = page(b"second", "text/plain")
    dns = DNS({"dual.test": ["127.0.0.3", "127.0.0.1"]})  # nothing listens on 127.0.0.3
    fetched = await fetch_url(f"http://dual.test:{server.port}/", intranet(dns))
    assert fetched.data == b"second"


async def test_any_bad_answer_refuses_the_host(server: _Server) -> None:
    dns = DNS({"mixed.test": [PUBLIC, "127.0.0.1"]})
    with pytest.raises(BlockedURLError, match=r"mixed\.test resolves to 127\.0\.0\.1"):
        await fetch_url(f"http://mixed.test:{server.port}/", FetchPolicy(resolver=dns))
    assert server.requests == []


# HTTPS: the connection goes to the address, the certificate is checked against the name


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command line tool is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subject = ["-subj", "/CN=docs.test", "-addext", "subjectAltName=DNS:docs.test"]
    files = ["-keyout", str(key), "-out", str(cert)]
    command = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run([*command, *subject, *files], check=True, capture_output=True)
    return cert, key


async def test_https_verifies_the_hostname_not_the_pinned_address(
    server: _Server, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.routes["/"] = page(b"secure", "text/plain")
    dns = DNS({"docs.test": ["127.0.0.1"], "wrong.test": ["127.0.0.1"]})
    trusting = ssl.create_default_context(cafile=str(cert))
    async with httpx.AsyncClient(verify=trusting, trust_env=False) as client:
        fetched = await fetch_url(f"https://docs.test:{server.port}/", intranet(dns), client)
        assert fetched.data == b"secure"
        with pytest.raises(FetchError, match=r"wrong\.test"):
            await fetch_url(f"https://wrong.test:{server.port}/", intranet(dns), client)


# Refused URLs


BLOCKED = [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1",
    "169.254.1.1", "169.254.169.254", "100.100.100.200", "224.0.0.1", "240.0.0.1",
    "255.255.255.255", "0.0.0.0", "0.1.2.3", "192.0.2.1", "::1", "::", "fc00::1", "fd12::1",
    "fe80::1", "fec0::1", "ff02::1", "fd00:ec2::254", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "::ffff:169.254.169.254", "::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::1", "2001:db8::1",
]  # fmt: skip


@pytest.mark.parametrize("address", BLOCKED)
async def test_non_public_addresses_are_refused(address: str) -> None:
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(BlockedURLError, match="address"):
        await check_url(f"http://{literal}/", FetchPolicy(resolver=DNS({})))
    dns = DNS({"evil.test": [address]})
    with pytest.raises(BlockedURLError, match=r"evil\.test resolves to"):
        await check_url("https://evil.test/", FetchPolicy(resolver=dns))


METADATA = [
    "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://0.0.0.0/",
    "http://[::ffff:169.254.169.254]/", "http://100.100.100.200/", "http://instance.test/",
    "http://metadata.google.internal/computeMetadata/v1/", "http://METADATA.google.internal./",
    "http://224.0.0.1/",
]  # fmt: skip


@pytest.mark.parametrize("url", METADATA)
async def test_metadata_and_non_unicast_stay_refused_on_the_intranet(url: str) -> None:
    with pytest.raises(BlockedURLError):
        await check_url(url, intranet(DNS({"instance.test": ["169.254.169.254"]})))


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.5", "fe80::1", "fd12::1"])
async def test_intranet_policy_allows_private_addresses(address: str) -> None:
    await check_url("http://wiki.test/", intranet(DNS({"wiki.test": [address]})))


async def test_public_address_passes() -> None:
    await check_url(
        "https://public.test/page", FetchPolicy(resolver=DNS({"public.test": [PUBLIC]}))
    )
    await check_url(f"http://{PUBLIC}:8080/", FetchPolicy(resolver=DNS({})))


ODD_NUMERIC = [
    "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.0.0.1/", "http://0x7f000001/",
    "http://127.1/", "http://017700000001/",
    "http://134744072/",  # 8.8.8.8, public, but still not written as an address
]  # fmt: skip


@pytest.mark.parametrize("url", ODD_NUMERIC)
async def test_odd_numeric_hosts_are_refused_without_a_lookup(url: str) -> None:
    dns = DNS({})
    with pytest.raises(BlockedURLError, match="numeric"):
        await check_url(url, intranet(dns))
    assert dns.calls == []


OTHER_SCHEMES = [
    "file:///etc/passwd", "ftp://example.com/file", "gopher://127.0.0.1:6379/_INFO",
    "data:text/plain,hello", "javascript:alert(1)", "dict://127.0.0.1:11211/stat",
    "ws://example.com/", "//example.com/page", "example.com/page", "",
]  # fmt: skip


@pytest.mark.parametrize("url", OTHER_SCHEMES)
async def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(BlockedURLError, match="Only http:// and https://"):
        await check_url(url, intranet())


@pytest.mark.parametrize(
    "url",
    ["http://user:pass@docs.test/", "http://user@docs.test/", "http://docs.test\\@127.0.0.1/"],
)
async def test_credentials_in_urls_are_refused(url: str) -> None:
    with pytest.raises(BlockedURLError, match="credentials"):
        await check_url(url, intranet(DNS({"docs.test": ["127.0.0.1"]})))


@pytest.mark.parametrize(
    ("url", "reason"),
    [("http:///path", "no host"), ("http://docs.test:99999/", "invalid port")],
)
async def test_malformed_urls(url: str, reason: str) -> None:
    with pytest.raises(FetchError, match=reason) as caught:
        await check_url(url, intranet())
    assert not isinstance(caught.value, BlockedURLError)


# Failures, the deadline and the size limit


async def test_http_errors_name_the_status(server: _Server) -> None:
    with pytest.raises(FetchError, match="HTTP 404 Not Found"):
        await fetch_url(f"http://127.0.0.1:{server.port}/missing", intranet())


async def test_unknown_host_and_refused_connection() -> None:
    with pytest.raises(FetchError, match=r"Could not resolve host nowhere\.test"):
        await fetch_url("http://nowhere.test/", intranet())
    with serving() as closed:
        port = closed.port
    with pytest.raises(
        FetchError, match=f"Could not connect to 127.0.0.1 port {port}: connection refused"
    ):
        await fetch_url(f"http://127.0.0.1:{port}/", intranet())


@pytest.mark.parametrize("route", [drip, silent], ids=["slow body", "slow headers"])
async def test_one_deadline_covers_the_whole_fetch(server: _Server, route: Route) -> None:
    server.routes["/slow"] = route
    started = time.monotonic()
    with pytest.raises(FetchError, match="did not respond within 1 s"):
        await fetch_url(f"http://127.0.0.1:{server.port}/slow", intranet(timeout=1.0))
    assert time.monotonic() - started < 3


async def test_endless_body_stops_at_the_limit(server: _Server) -> None:
    server.routes["/endless"] = endless
    with pytest.raises(FetchError, match="larger than the limit of 256 KB"):
        await fetch_url(f"http://127.0.0.1:{server.port}/endless", intranet(max_bytes=256 * 1024))


async def test_declared_length_over_the_limit_is_refused_unread(server: _Server) -> None:
    server.routes["/big"] = page(b"x" * 4096)
    with pytest.raises(FetchError, match="larger than the limit of 1 KB"):
        await fetch_url(f"http://127.0.0.1:{server.port}/big", intranet(max_bytes=1024))


async def test_gzip_bomb_counts_decoded_bytes(server: _Server) -> None:
    bomb = gzip.compress(b"\0" * (32 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 64 * 1024
    server.routes["/bomb"] = page(bomb, headers=(("Content-Encoding", "gzip"),))
    with pytest.raises(FetchError, match="larger than the limit of 1 MB"):
        await fetch_url(f"http://127.0.0.1:{server.port}/bomb", intranet(max_bytes=1024 * 1024))


# Sitemaps


def urlset(*locations: str, root: str = "urlset", entry: str = "url") -> bytes:
    entries = "".join(f"<{entry}><loc> {loc} </loc></{entry}>" for loc in locations)
    namespace = "http://www.sitemaps.org/schemas/sitemap/0.9"
    return f'<?xml version="1.0"?><{root} xmlns="{namespace}">{entries}</{root}>'.encode()


async def test_sitemap_urlset(server: _Server) -> None:
    base = f"http://127.0.0.1:{server.port}"
    pages = [f"{base}/a", f"{base}/b", f"{base}/a", "ftp://example.com/x", "https://docs.test/c"]
    server.routes["/sitemap.xml"] = page(urlset(*pages), "application/xml")
    found = await fetch_sitemap(f"{base}/sitemap.xml", intranet(), max_urls=100)
    assert found == [f"{base}/a", f"{base}/b", "https://docs.test/c"]
    assert await fetch_sitemap(f"{base}/sitemap.xml", intranet(), max_urls=2) == found[:2]


async def test_sitemap_index_follows_children_one_level(server: _Server) -> None:
    base = f"http://127.0.0.1:{server.port}"
    children = [
        f"{base}/one.xml",
        f"{base}/missing.xml",
        "http://169.254.169.254/sitemap.xml",
        f"{base}/two.xml.gz",
        f"{base}/nested.xml",
    ]
    server.routes["/index.xml"] = page(urlset(*children, root="sitemapindex", entry="sitemap"))
    server.routes["/one.xml"] = page(urlset(f"{base}/p1", f"{base}/p2"), "text/xml")
    zipped = gzip.compress(urlset(f"{base}/p2", f"{base}/p3"))
    server.routes["/two.xml.gz"] = page(zipped, "application/gzip")
    nested = urlset(f"{base}/one.xml", root="sitemapindex", entry="sitemap")
    server.routes["/nested.xml"] = page(nested, "text/xml")
    found = await fetch_sitemap(f"{base}/index.xml", intranet(), max_urls=10)
    assert found == [f"{base}/p1", f"{base}/p2", f"{base}/p3"]

    server.requests.clear()
    assert await fetch_sitemap(f"{base}/index.xml", intranet(), max_urls=2) == found[:2]
    assert [path for path, _, _ in server.requests] == ["/index.xml", "/one.xml"]


async def test_sitemap_index_whose_children_all_fail(server: _Server) -> None:
    base = f"http://127.0.0.1:{server.port}"
    index = urlset(f"{base}/gone.xml", root="sitemapindex", entry="sitemap")
    server.routes["/index.xml"] = page(index, "text/xml")
    with pytest.raises(FetchError, match=r"None of the sitemaps .* HTTP 404"):
        await fetch_sitemap(f"{base}/index.xml", intranet(), max_urls=10)


LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<urlset><url><loc>&lol2;</loc></url></urlset>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<urlset><url><loc>&xxe;</loc></url></urlset>"""
BARE_DOCTYPE = b'<!DOCTYPE urlset SYSTEM "http://127.0.0.1/x.dtd"><urlset/>'


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (LAUGHS, "DOCTYPE"),
        (XXE, "DOCTYPE"),
        (BARE_DOCTYPE, "DOCTYPE"),
        (b"<urlset><url><loc>http://x/</url></urlset>", "not valid XML"),
        (b"<html><body>hello</body></html>", "not a sitemap"),
        (gzip.compress(b"\0" * (4 * 1024 * 1024)), "larger than the limit"),
    ],
)
async def test_sitemap_refusals(server: _Server, body: bytes, reason: str) -> None:
    server.routes["/sitemap.xml"] = page(body, "application/xml")
    url = f"http://127.0.0.1:{server.port}/sitemap.xml"
    with pytest.raises(FetchError, match=reason):
        await fetch_sitemap(url, intranet(max_bytes=1024 * 1024), max_urls=10)


async def test_system_resolver_is_used_by_default(server: _Server) -> None:
    server.routes["/"] = page(b"local", "text/plain")
    policy = FetchPolicy(allow_private=True)
    assert (await fetch_url(f"http://localhost:{server.port}/", policy)).data == b"local"
    with pytest.raises(BlockedURLError, match="localhost resolves to"):
        await asyncio.wait_for(check_url("http://localhost/", FetchPolicy()), 5)
