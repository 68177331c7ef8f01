"""Conditional requests: a GET GitHub answered before is asked again with its ETag.

GitHub answers ``304 Not Modified`` when nothing changed, and a 304 does not count against
the installation's primary rate limit. :class:`ConditionalTransport` sits under one
installation's githubkit client: it remembers each successful GET's ETag and body in Redis
(shared by every worker), sends ``If-None-Match`` on the next GET of the same URL, and turns a
304 back into the 200 it stands for, so callers and githubkit never see the difference. Every
GET still reaches GitHub, so answers always reflect writes another worker made a moment ago.

What is stored: the ETag, a few response headers (media type, encoding, ``Link`` for paging)
and the body, under the installation's scope; never the request or its ``Authorization``
header. GitHub's ETags belong to the token that got them, and a token lives an hour, so
entries live an hour too (``ttl``), refreshed on each 304. Bodies over ``max_bytes`` are not
kept. If Redis fails, requests go out unconditional: a cache must not fail a job.

:class:`CommitFacts` keeps what was read at a commit sha: what a commit contains never
changes, so such answers (a missing file included) need no request at all the next time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Headers a replayed answer needs; the rest (dates, request ids, rate limits) come from the 304.
_KEPT_HEADERS = frozenset(
    {"content-type", "content-encoding", "etag", "last-modified", "link", "x-github-media-type"}
)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    etag: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def dumps(self) -> str:
        return json.dumps(
            {
                "etag": self.etag,
                "headers": [list(h) for h in self.headers],
                "body": base64.b64encode(self.body).decode(),
            }
        )

    @classmethod
    def loads(cls, raw: bytes | str) -> StoredResponse:
        data = json.loads(raw)
        return cls(
            data["etag"],
            tuple((str(k), str(v)) for k, v in data["headers"]),
            base64.b64decode(data["body"]),
        )


class EtagStore:
    """Remembered answers in Redis, one namespace per installation (``scope``)."""

    def __init__(
        self,
        redis: Redis,
        *,
        key_prefix: str,
        ttl: timedelta = timedelta(hours=1),
        fixed_ttl: timedelta = timedelta(days=1),
        max_bytes: int = 1 << 20,
    ) -> None:
        self._redis = redis
        self._prefix = key_prefix.rstrip(":")
        self.ttl = ttl
        self.fixed_ttl = fixed_ttl
        self.max_bytes = max_bytes

    def _key(self, kind: str, scope: str, what: str) -> str:
        digest = hashlib.sha256(what.encode()).hexdigest()
        return f"{self._prefix}:{kind}:{scope}:{digest}"

    async def get(self, scope: str, what: str) -> StoredResponse | None:
        try:
            raw = await self._redis.get(self._key("etag", scope, what))
        except RedisError as exc:
            logger.warning("conditional-request cache unavailable (%s); asking GitHub", exc)
            return None
        return StoredResponse.loads(raw) if raw is not None else None

    async def put(self, scope: str, what: str, stored: StoredResponse) -> None:
        if len(stored.body) > self.max_bytes:
            return
        try:
            await self._redis.set(self._key("etag", scope, what), stored.dumps(), ex=self.ttl)
        except RedisError as exc:
            logger.warning("conditional-request cache unavailable (%s)", exc)

    async def touch(self, scope: str, what: str) -> None:
        try:
            await self._redis.expire(self._key("etag", scope, what), self.ttl)
        except RedisError:
            pass  # the entry simply expires sooner

    async def get_fixed(self, scope: str, what: str) -> dict[str, Any] | None:
        """A remembered fact about something immutable (a path at a commit sha)."""
        try:
            raw = await self._redis.get(self._key("fixed", scope, what))
        except RedisError:
            return None
        return json.loads(raw) if raw is not None else None

    async def put_fixed(self, scope: str, what: str, fact: dict[str, Any]) -> None:
        text = json.dumps(fact)
        if len(text) > self.max_bytes:
            return
        try:
            await self._redis.set(self._key("fixed", scope, what), text, ex=self.fixed_ttl)
        except RedisError:
            pass


class CommitFacts:
    """Facts about commits of one installation's repositories, kept without revalidation."""

    def __init__(self, store: EtagStore, scope: str) -> None:
        self._store = store
        self._scope = scope

    async def get(self, what: str) -> dict[str, Any] | None:
        return await self._store.get_fixed(self._scope, what)

    async def put(self, what: str, fact: dict[str, Any]) -> None:
        await self._store.put_fixed(self._scope, what, fact)


def _request_key(request: httpx.Request) -> str:
    # The media type decides the body's shape (JSON, raw, diff), so it is part of the key.
    return f"{request.url}\n{request.headers.get('accept', '')}"


class ConditionalTransport(httpx.AsyncBaseTransport):
    """Sends GETs with the ETag of their last answer; a 304 comes back as that answer."""

    def __init__(self, inner: httpx.AsyncBaseTransport, store: EtagStore, scope: str) -> None:
        self._inner = inner
        self.store = store
        self.scope = scope

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET" or "if-none-match" in request.headers:
            return await self._inner.handle_async_request(request)
        key = _request_key(request)
        stored = await self.store.get(self.scope, key)
        sent = request
        if stored is not None:
            # A copy: the auth flow may send the original again (after a 401).
            headers = request.headers.copy()
            headers["If-None-Match"] = stored.etag
            sent = httpx.Request(
                request.method,
                request.url,
                headers=headers,
                stream=request.stream,
                extensions=request.extensions,
            )
        response = await self._inner.handle_async_request(sent)
        if response.status_code == 304 and stored is not None:
            await response.aclose()
            await self.store.touch(self.scope, key)
            return _replay(stored, response)
        etag = response.headers.get("etag")
        if response.status_code != 200 or not etag:
            return response
        try:
            body = b"".join([chunk async for chunk in response.aiter_raw()])
        finally:
            await response.aclose()
        kept = tuple((k, v) for k, v in response.headers.items() if k.lower() in _KEPT_HEADERS)
        await self.store.put(self.scope, key, StoredResponse(etag, kept, body))
        return httpx.Response(
            200,
            headers=response.headers,
            stream=httpx.ByteStream(body),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def _replay(stored: StoredResponse, not_modified: httpx.Response) -> httpx.Response:
    """The remembered 200, with the 304's own headers (rate limits, date) on top."""
    headers = httpx.Headers(list(stored.headers))
    for name, value in not_modified.headers.items():
        if name.lower() not in ("content-length", "content-type", "content-encoding"):
            headers[name] = value
    headers["content-length"] = str(len(stored.body))
    # "revalidated" tells logs and callers that GitHub answered 304 for this 200.
    extensions = {**not_modified.extensions, "reason_phrase": b"OK", "revalidated": True}
    return httpx.Response(
        200, headers=headers, stream=httpx.ByteStream(stored.body), extensions=extensions
    )
