"""Calls to Claude through the anthropic SDK, with budgets, prompt caching and cost accounting.

Every call goes through `LLMClient.create`, which
- checks the task's `Budget` first and raises `BudgetExceeded` naming the limit,
- marks the stable prefix for prompt caching: the last tool definition and the last system block
  (which carries the repository context) get `cache_control`, so each turn of a loop re-sends the
  same prefix byte for byte; the last message gets a moving marker so the conversation so far is
  cached incrementally,
- records the call's tokens and dollars in the budget and returns them in the `LLMCall`.

Overload and rate-limit responses (429, 529, 5xx) are retried by the SDK (`max_retries`). The API
key is only ever handed to the SDK: it is never logged, never part of a prompt or a result.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agents.budget import Budget, TokenUsage
from agents.pricing import PRICES, ModelPrice, price_for

if TYPE_CHECKING:
    import httpx2
    from anthropic import AsyncAnthropic

Block = dict[str, Any]
MessageParam = dict[str, Any]

CACHE_MARKER: Mapping[str, str] = {"type": "ephemeral"}

_MISSING_KEY = (
    "ANTHROPIC_API_KEY is not set: the agents cannot call Claude. Create a key at "
    "https://console.anthropic.com/settings/keys, set ANTHROPIC_API_KEY=<key> in the environment "
    "(or the .env file) of the worker process, and restart the worker."
)


class LLMError(RuntimeError):
    """A model call failed for a reason other than a budget limit (after the SDK's retries)."""


class LLMUnavailable(LLMError):
    """Claude cannot be called at all with this configuration (no key, key rejected)."""


@dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class LLMCall:
    """One model response with what it cost. `content` holds the blocks exactly as received."""

    model: str
    content: list[Block]
    stop_reason: str
    usage: TokenUsage
    cost_usd: float
    duration_s: float
    request_id: str | None = None

    @property
    def text(self) -> str:
        return "\n".join(b["text"] for b in self.content if b.get("type") == "text").strip()

    @property
    def tool_uses(self) -> list[ToolUse]:
        return [
            ToolUse(id=b["id"], name=b["name"], input=dict(b.get("input") or {}))
            for b in self.content
            if b.get("type") == "tool_use"
        ]

    def as_message(self) -> MessageParam:
        """The assistant turn to append to the conversation (thinking blocks kept unchanged)."""
        return {"role": "assistant", "content": list(self.content)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "content": self.content,
            "stop_reason": self.stop_reason,
            "usage": self.usage.to_dict(),
            "cost_usd": round(self.cost_usd, 6),
            "duration_s": round(self.duration_s, 3),
            "request_id": self.request_id,
        }


@dataclass(frozen=True)
class CachedRequest:
    """The request parts as sent, cache markers placed."""

    system: list[Block]
    tools: list[Block]
    messages: list[MessageParam]


def _marked(block: Block) -> Block:
    return {**block, "cache_control": dict(CACHE_MARKER)}


def with_cache_markers(
    system: Sequence[Block] | str, messages: Sequence[MessageParam], tools: Sequence[Block]
) -> CachedRequest:
    """Copies of the request parts with cache markers on the last tool, system block and message.

    The inputs are not changed, so a caller's stored conversation never accumulates markers (the
    API accepts at most four per request); each request carries exactly one per part.
    """
    system_blocks = [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
    if system_blocks:
        system_blocks[-1] = _marked(system_blocks[-1])
    tool_defs = list(tools)
    if tool_defs:
        tool_defs[-1] = _marked(tool_defs[-1])
    # String content is sent as one text block, so a message serialises the same way whether or
    # not it carries the marker this time.
    message_list = [
        {**m, "content": [{"type": "text", "text": m["content"]}]}
        if isinstance(m["content"], str)
        else m
        for m in messages
    ]
    if message_list and message_list[-1]["content"]:
        last = message_list[-1]
        blocks = list(last["content"])
        blocks[-1] = _marked(blocks[-1])
        message_list[-1] = {**last, "content": blocks}
    return CachedRequest(system=system_blocks, tools=tool_defs, messages=message_list)


def usage_from_response(usage: Any) -> TokenUsage:
    return TokenUsage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
    )


class LLMClient:
    """Claude over `anthropic.AsyncAnthropic`; constructing it makes no network call.

    `http_client` lets tests inject `httpx2.AsyncClient(transport=...)`; `base_url` points the SDK
    at another server (the bot's `FACTORY_ANTHROPIC_BASE_URL`). A client injected by the caller is
    the caller's to close; `aclose` closes only what this object created.
    """

    def __init__(
        self,
        *,
        api_key: str | None,
        model: str,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        timeout_s: float = 120,
        max_retries: int = 4,
        prices: Mapping[str, ModelPrice] = PRICES,
    ) -> None:
        self._api_key = api_key
        self.model = model
        self.base_url = base_url
        self.http_client = http_client
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.prices = prices
        self._sdk: AsyncAnthropic | None = None

    def __repr__(self) -> str:
        return f"LLMClient(model={self.model!r}, base_url={self.base_url!r})"

    def _client(self) -> AsyncAnthropic:
        if not self._api_key:
            raise LLMUnavailable(_MISSING_KEY)
        if self._sdk is None:
            # Imported here: the SDK costs ~3 s to import and processes that never call a model
            # (the webhook server, the CLI) should not pay for it.
            from anthropic import AsyncAnthropic

            self._sdk = AsyncAnthropic(
                api_key=self._api_key,
                base_url=self.base_url,
                http_client=self.http_client,
                timeout=self.timeout_s,
                max_retries=self.max_retries,
            )
        return self._sdk

    async def create(
        self,
        system: Sequence[Block] | str,
        messages: Sequence[MessageParam],
        tools: Sequence[Block] = (),
        *,
        budget: Budget,
        max_tokens: int = 4096,
        model: str | None = None,
    ) -> LLMCall:
        """One Messages API call. Raises BudgetExceeded before calling if a limit is reached."""
        budget.check()
        client = self._client()
        chosen_model = model or self.model
        request = with_cache_markers(system, messages, tools)
        started = time.monotonic()
        response = await self._send(client, request, chosen_model, max_tokens)
        duration = time.monotonic() - started
        usage = usage_from_response(response.usage)
        cost = price_for(chosen_model, self.prices).cost_usd(usage)
        budget.record(usage, cost)
        return LLMCall(
            model=chosen_model,
            content=[b.to_dict(mode="json", exclude_none=True) for b in response.content],
            stop_reason=response.stop_reason or "end_turn",
            usage=usage,
            cost_usd=cost,
            duration_s=duration,
            request_id=getattr(response, "_request_id", None),
        )

    async def _send(
        self, client: AsyncAnthropic, request: CachedRequest, model: str, max_tokens: int
    ) -> Any:
        import anthropic

        kwargs: dict[str, Any] = {"system": request.system} if request.system else {}
        if request.tools:
            kwargs["tools"] = request.tools
        try:
            return await client.messages.create(
                model=model,
                max_tokens=max_tokens,
                messages=request.messages,  # type: ignore[arg-type]
                **kwargs,
            )
        except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as error:
            raise LLMUnavailable(
                f"Anthropic rejected the API key (HTTP {error.status_code}): check "
                "ANTHROPIC_API_KEY and the key's workspace permissions in the Anthropic console."
            ) from error
        except anthropic.APIStatusError as error:
            raise LLMError(
                f"Anthropic API error {error.status_code} ({error.type or 'unknown'}): "
                f"{error.api_message or error.message}"
            ) from error
        except anthropic.APIConnectionError as error:
            raise LLMError(
                f"cannot reach the Anthropic API at {self.base_url or 'the default URL'}: {error}"
            ) from error

    async def aclose(self) -> None:
        if self._sdk is not None and self.http_client is None:
            await self._sdk.close()
        self._sdk = None
