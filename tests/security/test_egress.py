"""Setup steps reach only the listed registries, and only through the egress proxy.

A setup step is repository content, so untrusted. With the host's network (`--share-net`) it
reached the host's unauthenticated Redis (start work, read other repositories' jobs), PostgreSQL,
cloud metadata and the LAN. These tests run the real bubblewrap sandbox with its own network
namespace, the real forwarder inside it, the real proxy in the test's event loop, real package
managers (pip, curl, wget, git, npm, cargo) and the host's real Redis. Only DNS and the outbound
connection are injected where a test needs a public-looking registry (there is no internet here).

The bwrap command line is built here, mirroring BubblewrapSandbox (`--unshare-all` without
`--share-net`, the socket's directory bound in), until the sandbox class itself is wired to the
proxy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import io
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agents.sandbox.egress import (
    DEFAULT_ALLOW,
    AllowRule,
    EgressPolicy,
    EgressProxy,
    IPAddress,
    ProxyLimits,
    address_refusal,
    proxy_environment,
    wrap_command,
)
from agents.sandbox.egress_forwarder import FORWARDER_FAILED_EXIT

REDIS = ("127.0.0.1", 6379)
SOCKET_NAME = "egress.sock"
PUBLIC_V4 = ipaddress.ip_address("151.101.0.223")  # A public address; never actually dialled.
SANDBOX_ENV = {
    "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}

# What a setup step would run to reach host:port: through HTTPS_PROXY when the environment names
# one (as every package manager does), directly otherwise. Prints CONNECTED and what the far end
# said, REFUSED and the proxy's answer, or FAILED.
PROBE = r"""
import os, socket, sys
from urllib.parse import urlsplit
host, port = sys.argv[1], int(sys.argv[2])
proxy = os.environ.get("HTTPS_PROXY")
try:
    if proxy:
        p = urlsplit(proxy)
        conn = socket.create_connection((p.hostname, p.port), timeout=5)
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        conn.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            more = conn.recv(4096)
            if not more:
                break
            data += more
        head, _, leftover = data.partition(b"\r\n\r\n")
        words = head.split()
        if len(words) < 2 or words[1] != b"200":
            body = leftover + conn.recv(4096)
            print("REFUSED", words[1].decode() if len(words) > 1 else "?", body.decode().strip())
            sys.exit(3)
    else:
        conn = socket.create_connection((host, port), timeout=5)
        leftover = b""
    conn.sendall(b"PING\r\n")
    conn.settimeout(2)
    reply = leftover
    try:
        while b"PING" not in reply and b"PONG" not in reply and len(reply) < 4096:
            more = conn.recv(4096)
            if not more:
                break
            reply += more
    except TimeoutError:
        pass
    print("CONNECTED", reply.decode(errors="replace").strip())
except OSError as exc:
    print("FAILED", exc)
    sys.exit(4)
"""


# -- fakes for the two things the internet would provide ----------------------------------------


@dataclass
class StaticResolver:
    """DNS as the test says it is; records every lookup. Names it does not know do not resolve."""

    names: Mapping[str, Sequence[str]]
    lookups: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ipaddress.ip_address(a) for a in self.names[host]]


@dataclass
class RecordingConnector:
    """Records which checked address the proxy dials, and connects to a local stand-in instead."""

    stand_in: tuple[str, int] | None = None
    calls: list[tuple[IPAddress, int]] = field(default_factory=list)

    async def __call__(
        self, address: IPAddress, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.calls.append((address, port))
        if self.stand_in is None:
            raise ConnectionRefusedError("no stand-in server")
        return await asyncio.open_connection(*self.stand_in)


@contextlib.asynccontextmanager
async def banner_server(banner: bytes = b"HELLO FROM THE REGISTRY\n") -> AsyncIterator[int]:
    """A TCP server that greets, then echoes: stands in for a registry behind a tunnel."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(banner)
            await writer.drain()
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@dataclass
class HttpServer:
    port: int
    requests: list[bytes] = field(default_factory=list)


@contextlib.asynccontextmanager
async def http_server(routes: Mapping[str, tuple[bytes, bytes]]) -> AsyncIterator[HttpServer]:
    """A loopback HTTP server: path -> (content type, body); records each raw request."""
    state = HttpServer(port=0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            state.requests.append(head + await reader.readexactly(length))
            path = head.split(b" ")[1].decode()
            kind, body = routes.get(path.split("?")[0], (b"text/plain", b""))
            status = b"200 OK" if path.split("?")[0] in routes else b"404 Not Found"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: "
                + kind
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n"
                + body
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()


# -- talking to the proxy from the test itself --------------------------------------------------


@dataclass
class Answer:
    status: int
    head: str
    body: bytes
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


async def ask(socket_path: Path, request: bytes, *, body_bytes: int | None = None) -> Answer:
    """Send a raw request over the proxy socket; read the status head (and, for an error or
    `body_bytes`, the body). The connection stays open for tunnel tests."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    writer.write(request)
    await writer.drain()
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1")
    status = int(head.split()[1])
    body = b""
    if body_bytes is not None:
        body = await asyncio.wait_for(reader.readexactly(body_bytes), 10)
    elif status != 200:
        body = await asyncio.wait_for(reader.read(), 10)
    return Answer(status, head, body, reader, writer)


def connect_request(authority: str) -> bytes:
    return f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Short, because Unix socket paths are limited to 107 bytes (pytest's tmp_path can be longer).
    path = Path(tempfile.mkdtemp(prefix="egress-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def socket_path(socket_dir: Path) -> Path:
    return socket_dir / SOCKET_NAME


# -- the real sandbox ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float


@functools.cache
def _bwrap_works() -> bool:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False
    probe = [bwrap, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"]
    return subprocess.run(probe, capture_output=True, check=False, timeout=10).returncode == 0


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    if not _bwrap_works():
        pytest.skip("bubblewrap does not run on this host")
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "probe.py").write_text(PROBE)
    return root


@pytest.fixture
def host_redis() -> None:
    """The attack target must be there, or a refused connection would prove nothing."""
    try:
        with socket.create_connection(REDIS, timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            assert conn.recv(16).startswith(b"+PONG")
    except OSError:
        pytest.skip("no Redis answers on the host at 127.0.0.1:6379")


def _bwrap_argv(
    script: str, *, workspace: Path, binds: Sequence[Path], env: Mapping[str, str]
) -> list[str]:
    """As BubblewrapSandbox builds it for network=False, plus the proxy socket's directory."""
    argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    argv += ["--tmpfs", "/run"]
    for root in dict.fromkeys(Path(p).resolve() for p in (sys.prefix, sys.base_prefix)):
        if root.is_relative_to("/tmp"):
            argv += ["--ro-bind", str(root), str(root)]
    for directory in binds:
        argv += ["--ro-bind", str(directory), str(directory)]
    argv += ["--bind", str(workspace), str(workspace)]
    argv += ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    argv += ["--hostname", "sandbox", "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return [*argv, "--chdir", str(workspace), "--", "bash", "-c", script]


async def in_sandbox(
    command: str,
    *,
    workspace: Path,
    proxy_socket: Path | None,
    env: Mapping[str, str] | None = None,
    run_as: int | None = None,
    python: str = sys.executable,
    timeout_s: float = 120,
) -> Ran:
    """Run `command` as a setup step would run: in its own network namespace and, given the
    proxy's socket, behind the forwarder with the proxy variables set."""
    full_env = {**SANDBOX_ENV, **(env or {})}
    binds: list[Path] = []
    script = command
    if proxy_socket is not None:
        full_env.update(proxy_environment())
        binds.append(proxy_socket.parent)
        script = wrap_command(command, python=python, socket_path=proxy_socket)
    argv = _bwrap_argv(script, workspace=workspace, binds=binds, env=full_env)
    if run_as is not None:
        argv = ["setpriv", f"--reuid={run_as}", f"--regid={run_as}", "--clear-groups", *argv]
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return Ran(proc.returncode or 0, out.decode(), err.decode(), time.monotonic() - started)


def _destinations(proxy: EgressProxy) -> list[str]:
    return [r.destination for r in proxy.refusals]


# =============================================================================================
# The policy, as pure functions.


def test_allow_rules_match_exact_names_subdomain_wildcards_and_ports() -> None:
    policy = EgressPolicy.from_entries(
        ["pypi.org", "*.example.com", "registry.internal:8081", "203.0.113.9", "[2a04::1]:8443"]
    )
    admitted = [
        ("pypi.org", 443),
        ("pypi.org", 80),
        ("a.example.com", 443),
        ("a.b.example.com", 80),
        ("registry.internal", 8081),
        ("203.0.113.9", 443),
        ("2a04::1", 8443),
    ]
    refused = [
        ("pypi.org", 22),
        ("evil-pypi.org", 443),
        ("pypi.org.evil.test", 443),
        ("example.com", 443),  # *.suffix admits subdomains only
        ("aexample.com", 443),
        ("registry.internal", 443),  # a named port replaces 80/443
        ("203.0.113.10", 443),
        ("2a04::1", 443),
    ]
    assert [policy.destination_refusal(h, p) for h, p in admitted] == [None] * len(admitted)
    assert all(policy.destination_refusal(h, p) for h, p in refused)
    assert policy.destination_refusal("pypi.org", 6379) == (
        "port 6379 is not allowed for this host (80 and 443 unless listed)"
    )
    assert policy.destination_refusal("10.0.0.1", 443) == (
        "IP addresses are refused unless listed as such; use the registry's host name"
    )
    assert policy.destination_refusal("unlisted.test", 443) == "not on the egress allow list"


@pytest.mark.parametrize(
    "entry", ["", "*.", "*.10.0.0.1", "host:0", "host:99999", "::1", "[::1", "a b", "a/b", "x:y"]
)
def test_malformed_allow_list_entries_are_rejected(entry: str) -> None:
    with pytest.raises(ValueError, match="invalid egress allow-list entry"):
        AllowRule.parse(entry)


def test_default_allow_list_names_the_package_registries_and_parses() -> None:
    policy = EgressPolicy.from_entries()
    for host in (
        "pypi.org",
        "files.pythonhosted.org",
        "registry.npmjs.org",
        "github.com",
        "index.crates.io",
        "proxy.golang.org",
        "rubygems.org",
        "repo1.maven.org",
    ):
        assert host in DEFAULT_ALLOW
        assert policy.destination_refusal(host, 443) is None
    assert policy.destination_refusal("localhost", 443) == "not on the egress allow list"
    assert policy.destination_refusal("169.254.169.254", 80) is not None


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "private"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "IPv4-mapped form of 127.0.0.1, a loopback"),
        ("::ffff:169.254.169.254", "IPv4-mapped form of 169.254.169.254, a link-local"),
        ("::ffff:10.0.0.1", "IPv4-mapped form of 10.0.0.1, a private"),
        ("64:ff9b::7f00:1", "NAT64 form of 127.0.0.1"),
        ("2002:7f00:1::", "6to4 form of 127.0.0.1"),
        ("2002:a9fe:a9fe::", "6to4 form of 169.254.169.254"),
        ("::127.0.0.1", "reserved"),
        ("2001::1", "private"),  # Teredo
    ],
)
def test_non_public_addresses_are_refused(address: str, kind: str) -> None:
    reason = address_refusal(ipaddress.ip_address(address))
    assert reason is not None and kind in reason


@pytest.mark.parametrize(
    "address",
    [
        "151.101.0.223",
        "140.82.112.3",
        "8.8.8.8",
        "2a04:4e42::223",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::",
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


def test_every_resolved_address_must_be_public() -> None:
    policy = EgressPolicy.from_entries(["pypi.org"])
    mixed = [PUBLIC_V4, ipaddress.ip_address("10.0.0.1")]
    assert (
        policy.address_refusal("pypi.org", 443, mixed) == "resolves to 10.0.0.1, a private address"
    )
    assert policy.address_refusal("pypi.org", 443, [PUBLIC_V4]) is None
    assert policy.address_refusal("pypi.org", 443, []) == "the host name resolved to no address"


def test_allow_private_skips_the_public_rule_for_its_entries_only() -> None:
    policy = EgressPolicy.from_entries([], ["registry.internal:8081", "127.0.0.1:4000"])
    loopback = [ipaddress.ip_address("127.0.0.1")]
    assert policy.destination_refusal("registry.internal", 8081) is None
    assert (
        policy.address_refusal("registry.internal", 8081, [ipaddress.ip_address("10.0.0.5")])
        is None
    )
    assert policy.destination_refusal("127.0.0.1", 4000) is None
    assert policy.address_refusal("127.0.0.1", 4000, loopback) is None
    assert policy.destination_refusal("127.0.0.1", 6379) is not None
    assert policy.destination_refusal("registry.internal", 443) is not None


# =============================================================================================
# The proxy, over its real Unix socket, with injected DNS and connector.

ATTACK_NAMES = {
    "loop.evil.test": ["127.0.0.1"],
    "ten.evil.test": ["10.0.0.7"],
    "metadata.evil.test": ["169.254.169.254"],
    "six.evil.test": ["::1"],
    "mapped.evil.test": ["::ffff:127.0.0.1"],
    "cgnat.evil.test": ["100.64.1.1"],
    "half.evil.test": ["151.101.0.223", "127.0.0.1"],
}


@pytest.mark.parametrize(
    ("authority", "reason"),
    [
        ("127.0.0.1:6379", "IP addresses are refused unless listed"),
        ("localhost:6379", "not on the egress allow list"),
        ("[::1]:6379", "IP addresses are refused unless listed"),
        ("[::ffff:127.0.0.1]:6379", "IP addresses are refused unless listed"),
        ("169.254.169.254:80", "IP addresses are refused unless listed"),
        ("unlisted.example:443", "not on the egress allow list"),
        ("pypi.org:6379", "port 6379 is not allowed"),
        ("loop.evil.test:443", "resolves to 127.0.0.1, a loopback address"),
        ("ten.evil.test:443", "resolves to 10.0.0.7, a private address"),
        ("metadata.evil.test:80", "resolves to 169.254.169.254, a link-local address"),
        ("six.evil.test:443", "resolves to ::1, a loopback address"),
        ("mapped.evil.test:443", "the IPv4-mapped form of 127.0.0.1, a loopback address"),
        ("cgnat.evil.test:443", "a carrier-grade NAT address"),
        ("half.evil.test:443", "resolves to 127.0.0.1, a loopback address"),
    ],
)
async def test_connect_to_a_refused_destination_answers_403_and_is_recorded(
    socket_path: Path, authority: str, reason: str
) -> None:
    resolver = StaticResolver(ATTACK_NAMES)
    connector = RecordingConnector()
    allow = ["pypi.org", *ATTACK_NAMES]
    async with EgressProxy(
        socket_path, allow=allow, resolver=resolver, connector=connector
    ) as proxy:
        answer = await ask(socket_path, connect_request(authority))
        answer.writer.close()
    destination = authority.lower()
    assert answer.status == 403
    assert answer.body.decode().startswith(f"egress proxy refused {destination}: ")
    assert reason in answer.body.decode()
    assert answer.body.count(b"\n") == 1
    assert [(r.destination, reason in r.reason) for r in proxy.refusals] == [(destination, True)]
    assert connector.calls == []
    if "evil.test" not in authority:
        assert resolver.lookups == []  # Unlisted names never reach DNS.


async def test_localhost_is_refused_even_when_listed_by_its_real_addresses(
    socket_path: Path,
) -> None:
    # The real resolver: an operator listing `localhost` still does not open the host's loopback.
    async with EgressProxy(socket_path, allow=["localhost:6379"]) as proxy:
        answer = await ask(socket_path, connect_request("localhost:6379"))
    assert answer.status == 403
    assert "a loopback address" in proxy.refusals[0].reason


async def test_a_rebinding_name_is_dialled_at_the_address_that_was_checked(
    socket_path: Path,
) -> None:
    class Rebinding:
        """Public on the first lookup, loopback on every later one."""

        def __init__(self) -> None:
            self.lookups = 0

        async def __call__(self, host: str, port: int) -> list[IPAddress]:
            self.lookups += 1
            return [PUBLIC_V4 if self.lookups == 1 else ipaddress.ip_address("127.0.0.1")]

    resolver = Rebinding()
    async with banner_server() as port:
        connector = RecordingConnector(("127.0.0.1", port))
        async with EgressProxy(
            socket_path, allow=["rebind.example"], resolver=resolver, connector=connector
        ):
            first = await ask(socket_path, connect_request("rebind.example:443"))
            first.writer.close()
            second = await ask(socket_path, connect_request("rebind.example:443"))
            second.writer.close()
    assert (first.status, second.status) == (200, 403)
    assert connector.calls == [(PUBLIC_V4, 443)]
    assert resolver.lookups == 2  # Once per CONNECT: the check and the dial share one answer.


async def test_an_allowed_host_is_tunnelled_byte_for_byte(socket_path: Path) -> None:
    resolver = StaticResolver({"pypi.org": [str(PUBLIC_V4)]})
    async with banner_server() as port:
        connector = RecordingConnector(("127.0.0.1", port))
        async with EgressProxy(socket_path, resolver=resolver, connector=connector) as proxy:
            # Bytes sent right behind the CONNECT (an eager TLS hello) must not be lost.
            answer = await ask(socket_path, connect_request("pypi.org:443") + b"early ")
            answer.writer.write(b"bytes \x00\xff")
            await answer.writer.drain()
            expected = b"HELLO FROM THE REGISTRY\nearly bytes \x00\xff"
            received = await asyncio.wait_for(answer.reader.readexactly(len(expected)), 10)
            answer.writer.close()
    assert answer.head.startswith("HTTP/1.1 200")
    assert received == expected
    assert connector.calls == [(PUBLIC_V4, 443)]
    assert proxy.refusals == []
    assert proxy.bytes_relayed >= len(expected) + len(b"early bytes \x00\xff")


async def test_plain_http_is_forwarded_in_origin_form_with_connection_close(
    socket_path: Path,
) -> None:
    big = os.urandom(1_000_000)
    async with http_server({"/simple/pkg/": (b"application/octet-stream", big)}) as server:
        allow_private = [f"127.0.0.1:{server.port}"]
        async with EgressProxy(socket_path, allow=[], allow_private=allow_private) as proxy:
            request = (
                f"POST http://127.0.0.1:{server.port}/simple/pkg/?q=1 HTTP/1.1\r\n"
                f"Host: elsewhere.example\r\nProxy-Authorization: Basic c2VjcmV0\r\n"
                "Proxy-Connection: keep-alive\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
                "User-Agent: pip\r\nContent-Length: 5\r\n\r\nhello"
            ).encode()
            answer = await ask(socket_path, request, body_bytes=len(big))
            rest = await asyncio.wait_for(answer.reader.read(), 10)  # Then the proxy closes.
    seen = server.requests[0].decode("latin-1")
    assert seen.startswith("POST /simple/pkg/?q=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in seen
    assert "Connection: close\r\n" in seen
    for hop in ("Proxy-Authorization", "Proxy-Connection", "keep-alive", "X-Hop", "elsewhere"):
        assert hop not in seen
    assert "User-Agent: pip\r\n" in seen and seen.endswith("\r\n\r\nhello")
    assert answer.status == 200
    assert "Connection: close" in answer.head and "Keep-Alive" not in answer.head
    assert answer.body == big and rest == b""
    assert proxy.bytes_relayed > len(big)


async def test_plain_http_to_a_refused_host_answers_403_with_the_reason(socket_path: Path) -> None:
    connector = RecordingConnector()
    async with EgressProxy(socket_path, allow=["pypi.org"], connector=connector) as proxy:
        answer = await ask(socket_path, b"GET http://evil.example/x HTTP/1.1\r\n\r\n")
        metadata = await ask(
            socket_path, b"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\n\r\n"
        )
    assert answer.status == 403
    assert answer.body == b"egress proxy refused evil.example:80: not on the egress allow list\n"
    assert metadata.status == 403
    assert _destinations(proxy) == ["evil.example:80", "169.254.169.254:80"]
    assert connector.calls == []


async def test_allow_private_opens_exactly_its_entry(socket_path: Path) -> None:
    async with (
        banner_server() as port,
        EgressProxy(socket_path, allow=[], allow_private=[f"127.0.0.1:{port}"]) as proxy,
    ):
        allowed = await ask(socket_path, connect_request(f"127.0.0.1:{port}"))
        greeting = await asyncio.wait_for(allowed.reader.readline(), 10)
        allowed.writer.close()
        redis = await ask(socket_path, connect_request("127.0.0.1:6379"))
    assert (allowed.status, greeting) == (200, b"HELLO FROM THE REGISTRY\n")
    assert redis.status == 403
    assert _destinations(proxy) == ["127.0.0.1:6379"]


async def test_repeated_refusals_are_recorded_once_with_a_count(socket_path: Path) -> None:
    async with EgressProxy(socket_path, allow=[]) as proxy:
        for _ in range(3):
            await ask(socket_path, connect_request("evil.example:443"))
        await ask(socket_path, connect_request("other.example:443"))
    assert [(r.destination, r.attempts) for r in proxy.refusals] == [
        ("evil.example:443", 3),
        ("other.example:443", 1),
    ]


@pytest.mark.parametrize(
    ("request_bytes", "status", "says"),
    [
        (b"GET /simple/ HTTP/1.1\r\nHost: pypi.org\r\n\r\n", 400, "this is a proxy"),
        (b"CONNECT pypi.org HTTP/1.1\r\n\r\n", 400, "CONNECT needs host:port"),
        (b"CONNECT [::1 HTTP/1.1\r\n\r\n", 400, "malformed"),
        (b"CONNECT ::1:443 HTTP/1.1\r\n\r\n", 400, "needs brackets"),
        (b"CONNECT pypi.org:99999 HTTP/1.1\r\n\r\n", 400, "malformed port"),
        (b"CONNECT 127.1:6379 HTTP/1.1\r\n\r\n", 400, "malformed address"),
        (b"CONNECT a%00b:443 HTTP/1.1\r\n\r\n", 400, "malformed host name"),
        (b"GET ftp://pypi.org/ HTTP/1.1\r\n\r\n", 403, "only http:// URLs"),
        (b"GET http://pypi.org/ HTTP/2\r\n\r\n", 400, "malformed request line"),
        (b"GET http://pypi.org/ HTTP/1.1\r\nbad header\r\n\r\n", 400, "malformed header"),
        (
            b"POST http://pypi.org/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            501,
            "Content-Length",
        ),
    ],
)
async def test_malformed_or_unsupported_requests_are_answered_not_forwarded(
    socket_path: Path, request_bytes: bytes, status: int, says: str
) -> None:
    connector = RecordingConnector()
    async with EgressProxy(socket_path, connector=connector):
        answer = await ask(socket_path, request_bytes)
    assert answer.status == status
    assert says in answer.body.decode()
    assert connector.calls == []


async def test_request_headers_are_bounded(socket_path: Path) -> None:
    limits = ProxyLimits(max_header_bytes=1024)
    async with EgressProxy(socket_path, limits=limits):
        answer = await ask(socket_path, b"CONNECT pypi.org:443 HTTP/1.1\r\nX: " + b"a" * 4096)
    assert answer.status == 431
    assert "larger than 1024 bytes" in answer.body.decode()


async def test_connections_are_bounded(socket_path: Path) -> None:
    resolver = StaticResolver({"pypi.org": [str(PUBLIC_V4)]})
    async with banner_server() as port:
        connector = RecordingConnector(("127.0.0.1", port))
        limits = ProxyLimits(max_connections=1)
        async with EgressProxy(
            socket_path, resolver=resolver, connector=connector, limits=limits
        ) as proxy:
            first = await ask(socket_path, connect_request("pypi.org:443"))
            second = await ask(socket_path, connect_request("pypi.org:443"))
            assert proxy.active_connections == 1
            first.writer.close()
    assert (first.status, second.status) == (200, 503)
    assert len(connector.calls) == 1


async def test_an_idle_tunnel_is_closed(socket_path: Path) -> None:
    resolver = StaticResolver({"pypi.org": [str(PUBLIC_V4)]})
    async with banner_server() as port:
        connector = RecordingConnector(("127.0.0.1", port))
        limits = ProxyLimits(idle_timeout_s=0.3)
        async with EgressProxy(socket_path, resolver=resolver, connector=connector, limits=limits):
            answer = await ask(socket_path, connect_request("pypi.org:443"))
            started = time.monotonic()
            everything = await asyncio.wait_for(answer.reader.read(), 5)  # Ends at EOF.
            waited = time.monotonic() - started
    assert everything == b"HELLO FROM THE REGISTRY\n"
    assert 0.2 < waited < 2.0


async def test_the_byte_budget_ends_the_run_s_traffic(socket_path: Path) -> None:
    resolver = StaticResolver({"pypi.org": [str(PUBLIC_V4)]})
    async with banner_server(b"") as port:
        connector = RecordingConnector(("127.0.0.1", port))
        limits = ProxyLimits(max_total_bytes=10_000)
        async with EgressProxy(
            socket_path, resolver=resolver, connector=connector, limits=limits
        ) as proxy:
            tunnel = await ask(socket_path, connect_request("pypi.org:443"))
            tunnel.writer.write(b"x" * 50_000)
            with contextlib.suppress(ConnectionError):
                await tunnel.writer.drain()
            echoed = await asyncio.wait_for(tunnel.reader.read(), 10)
            after = await ask(socket_path, connect_request("pypi.org:443"))
    assert len(echoed) <= 10_000
    assert after.status == 403 and b"byte budget" in after.body
    assert proxy.refusals[0].destination == "*"


async def test_closing_the_proxy_ends_open_tunnels_and_removes_the_socket(
    socket_path: Path,
) -> None:
    resolver = StaticResolver({"pypi.org": [str(PUBLIC_V4)]})
    async with banner_server() as port:
        connector = RecordingConnector(("127.0.0.1", port))
        proxy = EgressProxy(socket_path, resolver=resolver, connector=connector)
        await proxy.start()
        assert socket_path.is_socket()
        assert socket_path.stat().st_mode & 0o777 == 0o600
        tunnel = await ask(socket_path, connect_request("pypi.org:443"))
        await tunnel.reader.readline()
        await asyncio.wait_for(proxy.close(), 5)
        assert await asyncio.wait_for(tunnel.reader.read(), 5) == b""
    assert not socket_path.exists()
    assert proxy.active_connections == 0


def test_a_socket_path_too_long_for_unix_sockets_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Unix sockets allow 107"):
        EgressProxy(tmp_path / ("d" * 120) / SOCKET_NAME)
    with pytest.raises(ValueError, match="too long"):
        wrap_command("true", python=sys.executable, socket_path="/" + "d" * 120)


# =============================================================================================
# Setup steps in the real sandbox.


async def test_a_setup_step_cannot_reach_the_host_redis_directly(
    workspace: Path, host_redis: None
) -> None:
    ran = await in_sandbox(
        f"{sys.executable} -I probe.py 127.0.0.1 6379", workspace=workspace, proxy_socket=None
    )
    assert "CONNECTED" not in ran.stdout and "PONG" not in ran.stdout
    assert ran.stdout.startswith("FAILED")


@pytest.mark.parametrize(
    ("target", "destination", "reason"),
    [
        ("127.0.0.1 6379", "127.0.0.1:6379", "IP addresses are refused"),
        ("localhost 6379", "localhost:6379", "not on the egress allow list"),
        ("::1 6379", "[::1]:6379", "IP addresses are refused"),
        ("::ffff:127.0.0.1 6379", "[::ffff:127.0.0.1]:6379", "IP addresses are refused"),
        ("169.254.169.254 80", "169.254.169.254:80", "IP addresses are refused"),
        ("cache.evil.test 6379", "cache.evil.test:6379", "resolves to 127.0.0.1"),
        ("metadata.evil.test 80", "metadata.evil.test:80", "resolves to 169.254.169.254"),
        ("lan.evil.test 443", "lan.evil.test:443", "resolves to 10.0.0.7"),
        ("v6.evil.test 6379", "v6.evil.test:6379", "resolves to ::1"),
        ("mapped.evil.test 6379", "mapped.evil.test:6379", "IPv4-mapped form of 127.0.0.1"),
        ("unlisted.example 443", "unlisted.example:443", "not on the egress allow list"),
    ],
)
async def test_setup_step_attacks_through_the_proxy_are_refused(
    workspace: Path,
    socket_path: Path,
    host_redis: None,
    target: str,
    destination: str,
    reason: str,
) -> None:
    # The attacker's names are listed (with the port they want), so only the address rule
    # stands between them and the host's services.
    resolver = StaticResolver(
        {
            "cache.evil.test": ["127.0.0.1"],
            "metadata.evil.test": ["169.254.169.254"],
            "lan.evil.test": ["10.0.0.7"],
            "v6.evil.test": ["::1"],
            "mapped.evil.test": ["::ffff:127.0.0.1"],
        }
    )
    connector = RecordingConnector()
    allow = [
        "cache.evil.test:6379",
        "metadata.evil.test",
        "lan.evil.test",
        "v6.evil.test:6379",
        "mapped.evil.test:6379",
    ]
    async with EgressProxy(
        socket_path, allow=allow, resolver=resolver, connector=connector
    ) as proxy:
        ran = await in_sandbox(
            f"{sys.executable} -I probe.py {target}", workspace=workspace, proxy_socket=socket_path
        )
    assert "CONNECTED" not in ran.stdout and "PONG" not in ran.stdout
    assert ran.stdout.startswith(f"REFUSED 403 egress proxy refused {destination}: ")
    assert reason in ran.stdout
    assert [r.destination for r in proxy.refusals] == [destination]
    assert connector.calls == []


async def test_a_setup_step_reaches_an_allowed_registry_through_the_tunnel(
    workspace: Path, socket_path: Path
) -> None:
    resolver = StaticResolver({"pypi.org": [str(PUBLIC_V4)]})
    async with banner_server() as port:
        connector = RecordingConnector(("127.0.0.1", port))
        async with EgressProxy(socket_path, resolver=resolver, connector=connector) as proxy:
            ran = await in_sandbox(
                f"{sys.executable} -I probe.py pypi.org 443",
                workspace=workspace,
                proxy_socket=socket_path,
            )
    assert ran.stdout.startswith("CONNECTED HELLO FROM THE REGISTRY")
    assert "PING" in ran.stdout  # Echoed back through forwarder and proxy.
    assert connector.calls == [(PUBLIC_V4, 443)]
    assert proxy.refusals == []


def _wheel() -> tuple[str, bytes]:
    """A real, installable wheel for `tinypkg`, built in memory."""
    name = "tinypkg-1.0-py3-none-any.whl"
    files = {
        "tinypkg/__init__.py": b'VALUE = "from the private index"\n',
        "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append("tinypkg-1.0.dist-info/RECORD,,")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr("tinypkg-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return name, buffer.getvalue()


async def test_pip_installs_from_a_private_index_through_the_proxy_and_nothing_else_is_reachable(
    workspace: Path, socket_path: Path, host_redis: None
) -> None:
    wheel_name, wheel = _wheel()
    digest = hashlib.sha256(wheel).hexdigest()
    page = f'<a href="/files/{wheel_name}#sha256={digest}">{wheel_name}</a>'.encode()
    routes = {
        "/simple/tinypkg/": (b"text/html", page),
        f"/files/{wheel_name}": (b"application/octet-stream", wheel),
    }
    py = sys.executable
    async with http_server(routes) as index:
        steps = "\n".join(
            [
                (
                    f"{py} -m pip install --no-cache-dir --no-deps --retries 0 --index-url "
                    f"http://127.0.0.1:{index.port}/simple/ --target site tinypkg > pip.log 2>&1"
                ),
                'echo "pip=$?"',
                (
                    f"{py} -I -c \"import sys; sys.path.insert(0, 'site'); import tinypkg; "
                    "print('VALUE', tinypkg.VALUE)\""
                ),
                f"{py} -I probe.py 127.0.0.1 6379",
                f"env -u HTTPS_PROXY {py} -I probe.py 127.0.0.1 6379",
                f"env -u HTTPS_PROXY {py} -I probe.py 127.0.0.1 {index.port}",
                "true",
            ]
        )
        async with EgressProxy(
            socket_path, allow=[], allow_private=[f"127.0.0.1:{index.port}"]
        ) as proxy:
            ran = await in_sandbox(steps, workspace=workspace, proxy_socket=socket_path)
    lines = ran.stdout.splitlines()
    assert lines[0] == "pip=0", (workspace / "pip.log").read_text()
    assert lines[1] == "VALUE from the private index"
    assert (workspace / "site" / "tinypkg" / "__init__.py").is_file()
    paths = [r.split(b" ")[1] for r in index.requests]
    assert b"/simple/tinypkg/" in paths and f"/files/{wheel_name}".encode() in paths
    # The same step, on the same run: Redis neither through the proxy nor directly, and even the
    # allowed index only through the proxy.
    assert lines[2].startswith("REFUSED 403 egress proxy refused 127.0.0.1:6379")
    assert lines[3].startswith("FAILED") and lines[4].startswith("FAILED")
    assert "PONG" not in ran.stdout
    assert _destinations(proxy) == ["127.0.0.1:6379"]


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path.home() / ".cargo" / "bin"))
    if found is None:
        pytest.skip(f"{name} is not installed here")
    return found


TOOLS = {
    # name: (program, command against the refused host, destination, what its output shows)
    "curl-https": (
        "curl",
        "curl -sS -o /dev/null -w '%{{http_connect}}' https://{h}/",
        "{h}:443",
        "403",
    ),
    "curl-http": (
        "curl",
        "curl -sS http://{h}/simple/",
        "{h}:80",
        "egress proxy refused {h}:80: not on the egress allow list",
    ),
    "wget": ("wget", "wget -O- https://{h}/", "{h}:443", "Proxy tunneling failed: Forbidden"),
    "python-urllib": (
        "python3",
        "{py} -I -c \"import urllib.request; urllib.request.urlopen('https://{h}/')\"",
        "{h}:443",
        "Tunnel connection failed: 403 Forbidden",
    ),
    "pip": (
        "python3",
        "{py} -m pip download --no-cache-dir --retries 0 --index-url https://{h}/simple/ tinypkg",
        "{h}:443",
        "No matching distribution found",
    ),
    "git": ("git", "git ls-remote https://{h}/repo.git", "{h}:443", "403"),
    "npm": ("npm", "npm view left-pad --registry=https://{h}/ --fetch-retries=0", "{h}:443", "403"),
    "cargo": ("cargo", "cargo search --limit 1 serde", "index.crates.io:443", "403"),
}


@pytest.mark.parametrize("tool", list(TOOLS))
async def test_each_package_tool_honours_the_proxy_variables_and_sees_403(
    workspace: Path, socket_path: Path, tool: str
) -> None:
    program, template, destination_template, shows = TOOLS[tool]
    path = _tool(program)
    host = f"{tool}.refused.test"
    command = template.format(h=host, py=sys.executable)
    env = {"PATH": f"{Path(path).parent}:{SANDBOX_ENV['PATH']}"}
    if tool == "cargo":
        rustup = os.environ.get("RUSTUP_HOME", str(Path.home() / ".rustup"))
        env.update({"RUSTUP_HOME": rustup, "CARGO_HOME": "/tmp/cargo", "CARGO_NET_RETRY": "0"})
    async with EgressProxy(socket_path, allow=[]) as proxy:
        ran = await in_sandbox(command, workspace=workspace, proxy_socket=socket_path, env=env)
    destination = destination_template.format(h=host)
    assert destination in _destinations(proxy), ran.stdout + ran.stderr
    assert shows.format(h=host) in ran.stdout + ran.stderr


async def test_the_command_does_not_run_when_the_forwarder_cannot_reach_the_proxy(
    workspace: Path, socket_dir: Path
) -> None:
    missing = socket_dir / SOCKET_NAME  # The directory is bound; no proxy listens.
    ran = await in_sandbox("touch ran-anyway", workspace=workspace, proxy_socket=missing)
    assert ran.exit_code == FORWARDER_FAILED_EXIT
    assert f"cannot reach the egress proxy at {missing}" in ran.stderr
    assert not (workspace / "ran-anyway").exists()


async def test_a_wrapped_command_keeps_its_exit_code_and_ends_promptly(
    workspace: Path, socket_path: Path
) -> None:
    async with EgressProxy(socket_path, allow=[]):
        ran = await in_sandbox(
            "echo out; echo err >&2; exit 7", workspace=workspace, proxy_socket=socket_path
        )
    assert (ran.exit_code, ran.stdout, ran.stderr) == (7, "out\n", "err\n")
    # The forwarder's daemon holds none of the command's pipes, so nothing waits for it.
    assert ran.duration_s < 5


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the sandbox as another uid")
async def test_an_unprivileged_sandbox_uid_reaches_a_socket_handed_to_it_and_no_other_uid_does(
    socket_dir: Path,
) -> None:
    if not _bwrap_works() or shutil.which("setpriv") is None:
        pytest.skip("bubblewrap or setpriv missing")
    sandbox_uid, stranger_uid = 200_123, 200_124
    root = Path(tempfile.mkdtemp(prefix="egress-ws-", dir="/tmp"))
    try:
        root.chmod(0o755)
        workspace = root / "workspace"
        workspace.mkdir()
        (workspace / "probe.py").write_text(PROBE)
        os.chown(workspace, sandbox_uid, sandbox_uid)
        socket_path = socket_dir / SOCKET_NAME
        resolver = StaticResolver({"pypi.org": [str(PUBLIC_V4)]})
        async with banner_server() as port:
            connector = RecordingConnector(("127.0.0.1", port))
            async with EgressProxy(socket_path, resolver=resolver, connector=connector):
                # What the lead's egress_for does: the directory and socket go to the sandbox uid.
                os.chown(socket_dir, sandbox_uid, sandbox_uid)
                os.chown(socket_path, sandbox_uid, sandbox_uid)
                assert socket_dir.stat().st_mode & 0o777 == 0o700
                # The system Python: on this host the bot's lives under /root, which another uid
                # cannot enter (the lead's sandbox must show the bot's Python to its uid).
                python = "/usr/bin/python3"
                probe = f"{python} -I probe.py pypi.org 443"
                owner = await in_sandbox(
                    probe,
                    workspace=workspace,
                    proxy_socket=socket_path,
                    run_as=sandbox_uid,
                    python=python,
                )
                stranger = await in_sandbox(
                    probe,
                    workspace=workspace,
                    proxy_socket=socket_path,
                    run_as=stranger_uid,
                    python=python,
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert owner.stdout.startswith("CONNECTED HELLO FROM THE REGISTRY"), owner.stderr
    assert stranger.exit_code == FORWARDER_FAILED_EXIT
    assert "Permission denied" in stranger.stderr
    assert len(connector.calls) == 1
