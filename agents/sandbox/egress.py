"""The egress proxy: the only way a setup step's traffic leaves its sandbox.

A setup step runs in a network namespace of its own, where nothing but its own loopback exists.
A forwarder inside (see egress_forwarder) relays each connection, byte for byte, over a Unix
socket to this proxy, which runs in the bot. The proxy speaks just enough HTTP/1.1 for package
managers: `CONNECT host:port` (a tunnel; TLS stays end to end, the proxy never sees plaintext)
and absolute-URI plain HTTP requests (`GET http://host/path`, forwarded with `Connection: close`).

A destination is admitted only when both hold:
- its host is on the allow list (exact names, or `*.suffix` for subdomains of suffix; ports 80
  and 443 unless the entry names one; IP literals only when listed as such), and
- every address the name resolves to is public (no loopback, private, link-local, CGNAT,
  multicast, reserved or unspecified address, nor an IPv4-mapped, NAT64 or 6to4 form of one).
  The connection then goes to one of exactly those checked addresses, so a name that resolves
  differently a moment later (DNS rebinding) changes nothing.
`allow_private` names `host[:port]` destinations (an internal registry) that are admitted without
the public-address rule; nothing else is.

Unlisted names are refused before any DNS lookup, so a step cannot use the proxy's resolver to
leak data through queries either. Every refusal answers 403 with a one-line reason and is
recorded (destination, reason), so the bot can tell the user which hosts a setup step tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from agents.sandbox.egress_forwarder import forwarder_script, proxy_environment, wrap_command
from agents.sandbox.egress_http import (
    CHUNK,
    DROPPED_RESPONSE_HEADERS,
    Request,
    answer,
    brief,
    close,
    origin_request,
    parse_request,
)
from agents.sandbox.egress_rules import (
    DEFAULT_ALLOW,
    AllowRule,
    BadRequest,
    EgressPolicy,
    IPAddress,
    address_refusal,
    format_destination,
    is_ip,
    split_authority,
)

__all__ = [
    "DEFAULT_ALLOW",
    "AllowRule",
    "Connector",
    "EgressPolicy",
    "EgressProxy",
    "IPAddress",
    "ProxyLimits",
    "Refusal",
    "Resolver",
    "address_refusal",
    "forwarder_script",
    "proxy_environment",
    "wrap_command",
]

logger = logging.getLogger(__name__)

# (host, port) -> every address the host resolves to. Called only for listed host names.
Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]
# (checked address, port) -> an open stream pair to exactly that address.
Connector = Callable[[IPAddress, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

# AF_UNIX paths are limited to 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
_MAX_RECORDED = 200
# ---------------------------------------------------------------------------------------------
# The proxy.


@dataclass(frozen=True, slots=True)
class Refusal:
    """A destination a setup step tried and was refused, why, and how often it tried."""

    destination: str
    reason: str
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class ProxyLimits:
    max_header_bytes: int = 16 * 1024
    max_connections: int = 64
    # A tunnel or forwarded request with no byte in either direction for this long is closed.
    idle_timeout_s: float = 60.0
    header_timeout_s: float = 10.0
    connect_timeout_s: float = 10.0
    # Every payload byte relayed, both directions, all connections; None for no cap.
    max_total_bytes: int | None = None


@dataclass(slots=True)
class _Activity:
    last: float = field(default_factory=time.monotonic)


class _Idle(Exception):
    pass


class _BudgetSpent(Exception):
    pass


async def default_resolver(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    found = (ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos)
    return list(dict.fromkeys(found))


async def default_connector(
    address: IPAddress, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    # AI_NUMERICHOST: the checked address is used as it is, never looked up again.
    return await asyncio.open_connection(str(address), port, flags=socket.AI_NUMERICHOST)


class EgressProxy:
    """An HTTP proxy on a Unix socket that admits only the policy's destinations.

    `async with EgressProxy(path) as proxy:` listens at `path` (mode 0600, owned by the bot:
    chown it, and its directory, to the sandbox's uid when that differs) until the block ends;
    then every open tunnel is closed and the socket removed. One proxy per setup run keeps its
    `refusals` about that run only.
    """

    def __init__(
        self,
        socket_path: Path,
        *,
        allow: Iterable[str] = DEFAULT_ALLOW,
        allow_private: Iterable[str] = (),
        resolver: Resolver | None = None,
        connector: Connector | None = None,
        limits: ProxyLimits | None = None,
    ) -> None:
        self.socket_path = Path(socket_path)
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH:
            raise ValueError(
                f"egress socket path is {len(os.fsencode(self.socket_path))} bytes long; Unix "
                f"sockets allow {MAX_SOCKET_PATH}: put it in a shorter directory"
            )
        self.policy = EgressPolicy.from_entries(allow, allow_private)
        self.limits = limits or ProxyLimits()
        self._resolve = resolver or default_resolver
        self._connect = connector or default_connector
        self._server: asyncio.AbstractServer | None = None
        # Every connection's task (cancelled by close), and those past the connection limit check.
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._refusals: dict[tuple[str, str], int] = {}
        self._bytes = 0
        self._budget_spent = False

    @property
    def refusals(self) -> list[Refusal]:
        """Each refused (destination, reason) once, in the order first seen."""
        return [Refusal(d, r, n) for (d, r), n in self._refusals.items()]

    @property
    def bytes_relayed(self) -> int:
        return self._bytes

    @property
    def active_connections(self) -> int:
        return len(self._handlers)

    async def start(self) -> None:
        path = self.socket_path
        if path.is_socket():
            path.unlink()  # Left behind by a crashed run; never unlink anything else.
        self._server = await asyncio.start_unix_server(
            self._accept, path=str(path), limit=self.limits.max_header_bytes
        )
        os.chmod(path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            if self.socket_path.is_socket():
                self.socket_path.unlink()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- one client connection ----------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if len(self._handlers) >= self.limits.max_connections:
                await answer(reader, writer, 503, "too many connections through the proxy")
                return
            self._handlers.add(task)
            await self._serve(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, _Idle, _BudgetSpent):
            pass
        except asyncio.CancelledError:
            # close() ends open connections so; the server's own done-callback would log a
            # task that ends cancelled as an error.
            pass
        finally:
            self._handlers.discard(task)
            self._tasks.discard(task)
            await close(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._read_request(reader)
        except BadRequest as exc:
            await answer(reader, writer, exc.status, str(exc))
            return
        if request is None:
            return  # Connected and left without a word (the forwarder's readiness check).
        if self._budget_spent:
            await self._refuse(
                reader, writer, "*", "the egress byte budget for this run is used up"
            )
            return
        try:
            if request.method == "CONNECT":
                host, port = split_authority(request.target, default_port=None)
                if port is None:
                    raise BadRequest("CONNECT needs host:port")
                await self._tunnel(reader, writer, host, port)
            elif request.target[:7].lower() == "http://":
                await self._forward(reader, writer, request)
            elif "://" in request.target:
                raise BadRequest("only http:// URLs and CONNECT tunnels are proxied", 403)
            else:
                raise BadRequest("this is a proxy: send CONNECT or an absolute http:// URL")
        except BadRequest as exc:
            await answer(reader, writer, exc.status, str(exc))

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await asyncio.wait_for(
                reader.readuntil(b"\r\n\r\n"), self.limits.header_timeout_s
            )
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise BadRequest("the request ended before its headers did") from None
            return None
        except asyncio.LimitOverrunError:
            raise BadRequest(
                f"request headers larger than {self.limits.max_header_bytes} bytes", 431
            ) from None
        except TimeoutError:
            raise BadRequest("no complete request in time", 408) from None
        return parse_request(head)

    async def _open(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Apply the policy and connect to a checked address; None after answering a refusal."""
        destination = format_destination(host, port)
        reason = self.policy.destination_refusal(host, port)
        if reason is not None:
            await self._refuse(reader, writer, destination, reason)
            return None
        timeout = self.limits.connect_timeout_s
        if is_ip(host):
            addresses: Sequence[IPAddress] = [ipaddress.ip_address(host)]
        else:
            try:
                addresses = list(await asyncio.wait_for(self._resolve(host, port), timeout))
            except (OSError, TimeoutError) as exc:
                why = f"could not resolve {destination}: {brief(exc)}"
                await answer(reader, writer, 502, why)
                return None
        reason = self.policy.address_refusal(host, port, addresses)
        if reason is not None:
            await self._refuse(reader, writer, destination, reason)
            return None
        failure: BaseException | None = None
        for address in addresses:
            try:
                return await asyncio.wait_for(self._connect(address, port), timeout)
            except (OSError, TimeoutError) as exc:
                failure = exc
        why = f"could not connect to {destination}: {brief(failure)}"
        await answer(reader, writer, 502, why)
        return None

    async def _tunnel(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
    ) -> None:
        upstream = await self._open(reader, writer, host, port)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        try:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            # Bytes the client sent right behind the CONNECT (an eager TLS hello) are still in
            # `reader`'s buffer and go first.
            await self._relay(reader, writer, up_reader, up_writer)
        finally:
            await close(up_writer)

    async def _forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: Request
    ) -> None:
        url = urlsplit(request.target)
        host, port = split_authority(url.netloc.rpartition("@")[2], default_port=80)
        assert port is not None
        if request.header("transfer-encoding"):
            raise BadRequest("chunked request bodies are not supported; send Content-Length", 501)
        lengths = set(request.header("content-length"))
        if len(lengths) > 1 or not all(v.isdigit() for v in lengths):
            raise BadRequest("malformed Content-Length")
        body_length = int(lengths.pop()) if lengths else 0
        upstream = await self._open(reader, writer, host, port)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        try:
            head = origin_request(request, url, host, port)
            self._count(len(head))
            up_writer.write(head)
            await self._copy_exactly(reader, up_writer, body_length)
            response_head = await self._read_response_head(up_reader)
            if response_head is None:
                await answer(reader, writer, 502, "the upstream server sent no valid response")
                return
            writer.write(response_head)
            activity = _Activity()
            await self._pump(up_reader, writer, activity)
        finally:
            await close(up_writer)

    async def _copy_exactly(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int
    ) -> None:
        remaining = length
        while remaining:
            data = await asyncio.wait_for(
                reader.read(min(CHUNK, remaining)), self.limits.idle_timeout_s
            )
            if not data:
                raise ConnectionResetError("the client closed before sending its whole body")
            self._count(len(data))
            remaining -= len(data)
            writer.write(data)
            await writer.drain()

    async def _read_response_head(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.limits.idle_timeout_s)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return None
        lines = head[:-4].decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1."):
            return None
        kept = [
            line
            for line in lines[1:]
            if line.partition(":")[0].strip().lower() not in DROPPED_RESPONSE_HEADERS
        ]
        self._count(len(head))
        return "\r\n".join([lines[0], *kept, "Connection: close", "", ""]).encode("latin-1")

    async def _relay(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        activity = _Activity()
        pumps = [
            asyncio.create_task(self._pump(client_reader, up_writer, activity)),
            asyncio.create_task(self._pump(up_reader, client_writer, activity)),
        ]
        try:
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if not task.cancelled() and (error := task.exception()) is not None:
                    raise error
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, activity: _Activity
    ) -> None:
        """Copy until end of file (then half-close `writer`), or raise _Idle when neither
        direction has moved a byte for the idle timeout."""
        idle = self.limits.idle_timeout_s
        while True:
            try:
                data = await asyncio.wait_for(reader.read(CHUNK), idle)
            except TimeoutError:
                if time.monotonic() - activity.last >= idle:
                    raise _Idle() from None
                continue
            except (ConnectionError, OSError):
                return
            if not data:
                with contextlib.suppress(OSError, RuntimeError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            activity.last = time.monotonic()
            self._count(len(data))
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                return

    def _count(self, n: int) -> None:
        self._bytes += n
        cap = self.limits.max_total_bytes
        if cap is not None and self._bytes > cap:
            if not self._budget_spent:
                self._budget_spent = True
                self._record("*", f"the egress byte budget ({cap} bytes) is used up")
            raise _BudgetSpent()

    def _record(self, destination: str, reason: str) -> None:
        key = (destination, reason)
        if key in self._refusals or len(self._refusals) < _MAX_RECORDED:
            self._refusals[key] = self._refusals.get(key, 0) + 1

    async def _refuse(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        destination: str,
        reason: str,
    ) -> None:
        self._record(destination, reason)
        logger.info("egress proxy refused %s: %s", destination, reason)
        await answer(reader, writer, 403, f"egress proxy refused {destination}: {reason}")
