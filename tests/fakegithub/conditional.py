"""Conditional requests as GitHub answers them: validators on successful GETs, 304 when they match.

GitHub sends an ``ETag`` with a 200 answer to a GET and answers ``304 Not Modified`` (no body,
not counted against the primary rate limit) when the request's ``If-None-Match`` names the
current one. Its ETags depend on the credentials as well as the content: a new installation
token gets a new ETag for the same body, so a validator from an older token never matches.
Errors (a 404 included) carry no validator.
"""

from __future__ import annotations

import hashlib

from starlette.types import Message, Send

# What GitHub sends with every cacheable answer.
CACHE_CONTROL = b"private, max-age=60, s-maxage=60"
VARY = b"Accept, Authorization, Cookie, X-GitHub-OTP"


def etag_for(authorization: str | None, body: bytes) -> str:
    digest = hashlib.sha256((authorization or "").encode() + b"\0" + body).hexdigest()
    return f'W/"{digest[:40]}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison, as GitHub applies it (a list of tags, or ``*``)."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False


def conditional_send(send: Send, authorization: str | None, if_none_match: str | None) -> Send:
    """Wraps ``send`` for one GET: holds the answer back to add its ETag, or to turn a
    200 whose ETag the client already has into a bodiless 304."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            if message["status"] != 200:
                start = None
                await send(message)
                return
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        etag = etag_for(authorization, body)
        validators = [
            (b"etag", etag.encode()),
            (b"cache-control", CACHE_CONTROL),
            (b"vary", VARY),
        ]
        if matches(if_none_match, etag):
            await send({"type": "http.response.start", "status": 304, "headers": validators})
            await send({"type": "http.response.body", "body": b""})
            return
        kept = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers = [*kept, *validators, (b"content-length", str(len(body)).encode())]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return wrapped
