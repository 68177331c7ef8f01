"""HTTP/1.1 on the wire, as much as the egress proxy speaks: parse a request head, rewrite an
absolute-URI request for the origin, answer an error and end the exchange."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from urllib.parse import SplitResult

from agents.sandbox.egress_rules import BadRequest, format_destination

CHUNK = 64 * 1024
# How long, and how much, unread request input is drained after an error answer.
_LINGER_S = 1.0
_LINGER_BYTES = 256 * 1024
_VERSIONS = ("HTTP/1.0", "HTTP/1.1")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones this proxy sets itself.
_DROPPED_REQUEST_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "host",
    }
)
DROPPED_RESPONSE_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection"})


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name]


def parse_request(head: bytes) -> Request:
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or parts[2] not in _VERSIONS:
        raise BadRequest("malformed request line")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name) or "\n" in line or "\r" in line:
            raise BadRequest("malformed header line")
        headers.append((name, value.strip()))
    return Request(parts[0].upper(), parts[1], headers)


def origin_request(request: Request, url: SplitResult, host: str, port: int) -> bytes:
    """The request as the origin server sees it: origin-form target, our Host, no hop-by-hop
    headers, and `Connection: close` (one request per connection keeps the proxy simple)."""
    path = url.path or "/"
    target = f"{path}?{url.query}" if url.query else path
    named = {
        token.strip().lower()
        for value in request.header("connection")
        for token in value.split(",")
    }
    kept = [
        f"{name}: {value}"
        for name, value in request.headers
        if name.lower() not in _DROPPED_REQUEST_HEADERS and name.lower() not in named
    ]
    authority = (
        format_destination(host, port) if port != 80 else (f"[{host}]" if ":" in host else host)
    )
    lines = [
        f"{request.method} {target} HTTP/1.1",
        f"Host: {authority}",
        *kept,
        "Connection: close",
        "",
        "",
    ]
    return "\r\n".join(lines).encode("latin-1")


async def answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int, reason: str
) -> None:
    """Answer and end the exchange. Unread request bytes are drained (briefly) before the
    caller closes: closing a socket with unread input resets it, and the client would see a
    reset instead of the answer."""
    phrases = {
        400: "Bad Request",
        403: "Forbidden",
        408: "Request Timeout",
        431: "Request Header Fields Too Large",
        501: "Not Implemented",
        502: "Bad Gateway",
        503: "Service Unavailable",
    }
    body = (reason.replace("\r", " ").replace("\n", " ") + "\n").encode("utf-8", "replace")
    head = (
        f"HTTP/1.1 {status} {phrases.get(status, 'Error')}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with contextlib.suppress(ConnectionError, OSError, RuntimeError, TimeoutError):
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        await asyncio.wait_for(_discard(reader), _LINGER_S)


async def _discard(reader: asyncio.StreamReader) -> None:
    total = 0
    while total < _LINGER_BYTES and (data := await reader.read(CHUNK)):
        total += len(data)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


def brief(exc: BaseException | None) -> str:
    if exc is None:
        return "no address"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return (exc.strerror or type(exc).__name__) if isinstance(exc, OSError) else str(exc)
