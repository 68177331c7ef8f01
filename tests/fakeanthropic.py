"""A scripted fake of Anthropic's Messages API, driven through the real SDK.

The fake answers `POST /v1/messages` with scripted replies, in order, and records every request.
It behaves like the API where our code could get it wrong:

- usage is computed honestly from the request: a block costs ceil(len(canonical JSON) / 4)
  tokens; a `cache_control` marker writes the prefix up to it to the cache (if that prefix has at
  least `min_cacheable_tokens`), and a later request whose prefix matches a written one (looking
  back up to 20 blocks from each marker, as the API does) reports it as `cache_read_input_tokens`;
- it rejects what the API rejects (400 `invalid_request_error`): roles not alternating, a
  `tool_use` not answered by a `tool_result` at the start of the next user turn, more than four
  cache markers, empty text blocks, malformed tool definitions.

Use it in-process with `http_client=httpx2.AsyncClient(transport=fake.transport())`, or across
processes with `with fake.serve() as base_url:`.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2

Json = dict[str, Any]

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_LOOKBACK_BLOCKS = 20
_MAX_CACHE_MARKERS = 4


@dataclass(frozen=True)
class Reply:
    """One scripted answer: content blocks (tool_use ids are filled in by the fake) or an error."""

    content: tuple[Json, ...] = ()
    stop_reason: str = "end_turn"
    status: int = 200
    error_type: str = ""
    error_message: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


ScriptItem = Reply | Callable[[Json], Reply]


def text(message: str) -> Reply:
    """The model answers in prose and stops (`end_turn`)."""
    return Reply(content=({"type": "text", "text": message},), stop_reason="end_turn")


def tool_call(name: str, tool_input: Mapping[str, Any], *, say: str | None = None) -> Reply:
    """The model calls tool `name` with `tool_input` (optionally saying something first)."""
    return tool_calls((name, tool_input), say=say)


def tool_calls(*calls: tuple[str, Mapping[str, Any]], say: str | None = None) -> Reply:
    """The model calls several tools in one turn, in order."""
    blocks: list[Json] = [{"type": "text", "text": say}] if say else []
    blocks += [{"type": "tool_use", "name": name, "input": dict(args)} for name, args in calls]
    return Reply(content=tuple(blocks), stop_reason="tool_use")


def overloaded(retry_after_ms: int = 1) -> Reply:
    """A 529 `overloaded_error`, which the SDK retries after `retry-after-ms`."""
    return Reply(
        status=529,
        error_type="overloaded_error",
        error_message="Overloaded",
        headers={"retry-after-ms": str(retry_after_ms)},
    )


def never_finishes(
    name: str = "read_file", tool_input: Mapping[str, Any] | None = None
) -> Iterator[Reply]:
    """A model that keeps calling the same tool forever."""
    return itertools.repeat(tool_call(name, tool_input or {"path": "README.md"}))


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _without_marker(block: Json) -> Json:
    return {k: v for k, v in block.items() if k != "cache_control"}


def count_tokens(value: Any) -> int:
    return math.ceil(len(canonical(value)) / 4)


class InvalidRequest(ValueError):
    pass


@dataclass(frozen=True)
class _Unit:
    """One cacheable block of a request, in the order the API reads the prompt."""

    key: str
    tokens: int
    marked: bool


def _units(body: Json) -> list[_Unit]:
    units: list[_Unit] = []
    for tool in body.get("tools") or []:
        units.append(
            _Unit(
                canonical(_without_marker(tool)),
                count_tokens(_without_marker(tool)),
                "cache_control" in tool,
            )
        )
    system = body.get("system")
    if isinstance(system, str):
        system = [{"type": "text", "text": system}]
    for block in system or []:
        units.append(
            _Unit(
                canonical(_without_marker(block)),
                count_tokens(_without_marker(block)),
                "cache_control" in block,
            )
        )
    for message in body["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for block in blocks:
            plain = _without_marker(block)
            units.append(
                _Unit(
                    message["role"] + canonical(plain),
                    count_tokens(plain),
                    "cache_control" in block,
                )
            )
    return units


def _validate(body: Json) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("model: Field required")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        raise InvalidRequest("max_tokens: must be a positive integer")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: at least one message is required")
    _validate_tools(body.get("tools") or [])
    _validate_messages(messages)
    markers = sum(unit.marked for unit in _units(body))
    if markers > _MAX_CACHE_MARKERS:
        raise InvalidRequest(
            f"A maximum of {_MAX_CACHE_MARKERS} blocks with cache_control may be provided. "
            f"Found {markers}."
        )


def _validate_tools(tools: list[Json]) -> None:
    for tool in tools:
        if not _TOOL_NAME.match(str(tool.get("name", ""))):
            raise InvalidRequest(f"tools: invalid tool name {tool.get('name')!r}")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise InvalidRequest(
                f"tools.{tool.get('name')}.input_schema: must be a JSON schema object"
            )


def _validate_messages(messages: list[Json]) -> None:
    pending_tool_ids: list[str] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role != ("user" if index % 2 == 0 else "assistant"):
            raise InvalidRequest(
                f"messages.{index}: roles must alternate user/assistant, starting with user"
            )
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not blocks:
            raise InvalidRequest(f"messages.{index}: content must not be empty")
        if any(b.get("type") == "text" and not str(b.get("text", "")).strip() for b in blocks):
            raise InvalidRequest(f"messages.{index}: text content blocks must be non-empty")
        _check_tool_results(index, blocks, pending_tool_ids)
        pending_tool_ids = (
            [b["id"] for b in blocks if b.get("type") == "tool_use"] if role == "assistant" else []
        )


def _check_tool_results(index: int, blocks: list[Json], pending_tool_ids: list[str]) -> None:
    """Every tool_use must be answered first thing in the next user turn, and nothing else."""
    answered = [str(b.get("tool_use_id")) for b in blocks if b.get("type") == "tool_result"]
    if not pending_tool_ids:
        if answered:
            raise InvalidRequest(f"messages.{index}: unexpected `tool_result` block")
        return
    leading = {b.get("type") for b in blocks[: len(pending_tool_ids)]}
    if sorted(answered) != sorted(pending_tool_ids) or leading != {"tool_result"}:
        raise InvalidRequest(
            f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {pending_tool_ids}. Each `tool_use` block must have a "
            "corresponding `tool_result` block in the next message, placed first."
        )


class FakeAnthropic:
    """The fake API. `requests` holds every request body (parsed), `responses` every reply sent."""

    def __init__(
        self, script: Iterable[ScriptItem] = (), *, min_cacheable_tokens: int = 1024
    ) -> None:
        self._script: Iterator[ScriptItem] = iter(script)
        self.min_cacheable_tokens = min_cacheable_tokens
        self.requests: list[Json] = []
        self.request_texts: list[str] = []
        self.request_headers: list[dict[str, str]] = []
        self.responses: list[Json] = []
        self._cache: set[str] = set()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def add(self, *items: ScriptItem) -> None:
        """Append replies to the script (after whatever is left of it)."""
        self._script = itertools.chain(self._script, items)

    # The protocol -----------------------------------------------------------------------------

    def handle(
        self, raw_body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, Json, dict[str, str]]:
        with self._lock:
            text_body = raw_body.decode("utf-8")
            self.request_texts.append(text_body)
            self.request_headers.append({k.lower(): v for k, v in headers.items()})
            body = json.loads(text_body)
            self.requests.append(body)
            try:
                _validate(body)
            except InvalidRequest as error:
                return self._error(400, "invalid_request_error", str(error))
            item = next(self._script, None)
            if item is None:
                return self._error(
                    400,
                    "invalid_request_error",
                    f"FakeAnthropic: script exhausted after {len(self.responses)} replies",
                )
            reply = item(body) if callable(item) else item
            if reply.status != 200:
                return self._error(
                    reply.status, reply.error_type, reply.error_message, dict(reply.headers)
                )
            response = self._message(body, reply)
            self.responses.append(response)
            return (
                200,
                response,
                {"request-id": f"req_fake_{len(self.responses):04d}", **reply.headers},
            )

    def _error(
        self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
    ) -> tuple[int, Json, dict[str, str]]:
        body = {"type": "error", "error": {"type": kind, "message": message}}
        self.responses.append({"status": status, **body})
        return (
            status,
            body,
            {"x-should-retry": "true" if status in (429, 529) else "false", **(headers or {})},
        )

    def _message(self, body: Json, reply: Reply) -> Json:
        content = []
        for block in reply.content:
            if block.get("type") == "tool_use":
                block = {"id": f"toolu_fake_{next(self._ids):04d}", **block}
            content.append(block)
        return {
            "id": f"msg_fake_{len(self.responses) + 1:04d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": {**self._usage(body), "output_tokens": count_tokens(content)},
        }

    def _usage(self, body: Json) -> dict[str, int]:
        units = _units(body)
        hashes: list[str] = []
        cumulative: list[int] = []
        digest = hashlib.sha256(body["model"].encode())
        running = 0
        for unit in units:
            digest.update(unit.key.encode())
            hashes.append(digest.copy().hexdigest())
            running += unit.tokens
            cumulative.append(running)
        total = running
        markers = [i for i, unit in enumerate(units) if unit.marked]
        cacheable = [i for i in markers if cumulative[i] >= self.min_cacheable_tokens]
        if not cacheable:
            return {
                "input_tokens": total,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
            }
        candidates = {j for i in markers for j in range(max(0, i - _LOOKBACK_BLOCKS + 1), i + 1)}
        hits = [j for j in candidates if hashes[j] in self._cache]
        read = cumulative[max(hits)] if hits else 0
        written = max(0, cumulative[cacheable[-1]] - read)
        self._cache.update(hashes[i] for i in cacheable)
        return {
            "input_tokens": total - read - written,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
        }

    # Transports -------------------------------------------------------------------------------

    def transport(self) -> httpx2.MockTransport:
        """For `httpx2.AsyncClient(transport=...)` handed to the SDK in-process."""

        def handler(request: httpx2.Request) -> httpx2.Response:
            if request.method != "POST" or request.url.path != "/v1/messages":
                return httpx2.Response(
                    404,
                    json={
                        "type": "error",
                        "error": {"type": "not_found_error", "message": "not found"},
                    },
                )
            status, payload, headers = self.handle(request.content, dict(request.headers))
            return httpx2.Response(status, json=payload, headers=headers)

        return httpx2.MockTransport(handler)

    def asgi_app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def messages(request: Request) -> JSONResponse:
            status, payload, headers = self.handle(await request.body(), dict(request.headers))
            return JSONResponse(payload, status_code=status, headers=headers)

        return Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Serve the fake on a loopback port in a thread; yields the base URL for the SDK."""
        import uvicorn

        config = uvicorn.Config(
            self.asgi_app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="fake-anthropic", daemon=True)
        thread.start()
        try:
            while not server.started:
                if not thread.is_alive():
                    raise RuntimeError("the fake Anthropic server failed to start")
                thread.join(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(5)

    # Reading what was sent --------------------------------------------------------------------

    def usages(self) -> list[dict[str, int]]:
        return [r["usage"] for r in self.responses if r.get("type") == "message"]
