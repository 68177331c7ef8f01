"""Dollar cost of a model call from its token usage, per model.

Rates are USD per million tokens from Anthropic's published price list (checked November 2026).
Cache writes are priced at the 5-minute rate because `LLMClient` only sets ephemeral markers with
the default TTL. A model missing from the table is priced at `DEFAULT_PRICE`, an Opus-class rate,
so that a budget in dollars errs on the side of stopping early rather than overspending.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from agents.budget import TokenUsage

_PER_TOKEN = 1 / 1_000_000


@dataclass(frozen=True)
class Rates:
    input: float
    output: float
    cache_write: float
    cache_read: float


@dataclass(frozen=True)
class ModelPrice:
    """Rates per million tokens; some models charge more for every token of a long prompt."""

    rates: Rates
    long_prompt_threshold: int | None = None
    long_prompt_rates: Rates | None = None

    def rates_for(self, usage: TokenUsage) -> Rates:
        if (
            self.long_prompt_threshold is not None
            and self.long_prompt_rates is not None
            and usage.prompt_tokens > self.long_prompt_threshold
        ):
            return self.long_prompt_rates
        return self.rates

    def cost_usd(self, usage: TokenUsage) -> float:
        rates = self.rates_for(usage)
        return _PER_TOKEN * (
            usage.input_tokens * rates.input
            + usage.output_tokens * rates.output
            + usage.cache_write_tokens * rates.cache_write
            + usage.cache_read_tokens * rates.cache_read
        )


def _price(input: float, output: float, cache_write: float, cache_read: float) -> ModelPrice:
    return ModelPrice(Rates(input, output, cache_write, cache_read))


DEFAULT_PRICE = _price(5.0, 25.0, 6.25, 0.50)

# Keys are model ids without a date suffix; `price_for` also accepts dated ids.
PRICES: Mapping[str, ModelPrice] = MappingProxyType(
    {
        "claude-fable-5-2": _price(8.0, 40.0, 10.0, 0.20),
        "claude-fable-5-1": _price(10.0, 50.0, 12.50, 0.25),
        "claude-fable-5": _price(10.0, 50.0, 12.50, 1.0),
        "claude-mythos-5-1": _price(10.0, 50.0, 12.50, 0.25),
        "claude-mythos-5": _price(10.0, 50.0, 12.50, 1.0),
        "claude-opus-5-5": _price(4.0, 20.0, 5.0, 0.20),
        "claude-opus-5": _price(5.0, 25.0, 6.25, 0.50),
        "claude-opus-4-8": _price(5.0, 25.0, 6.25, 0.50),
        "claude-opus-4-7": _price(5.0, 25.0, 6.25, 0.50),
        "claude-opus-4-6": _price(5.0, 25.0, 6.25, 0.50),
        "claude-opus-4-5": _price(5.0, 25.0, 6.25, 0.50),
        "claude-opus-4-1": _price(15.0, 75.0, 18.75, 1.50),
        "claude-opus-4": _price(15.0, 75.0, 18.75, 1.50),
        "claude-sonnet-5-5": _price(2.0, 10.0, 2.50, 0.10),
        "claude-sonnet-5": _price(2.0, 10.0, 2.50, 0.20),
        "claude-sonnet-4-6": _price(3.0, 15.0, 3.75, 0.30),
        "claude-sonnet-4-5": _price(3.0, 15.0, 3.75, 0.30),
        "claude-sonnet-4": _price(3.0, 15.0, 3.75, 0.30),
        "claude-3-7-sonnet": _price(3.0, 15.0, 3.75, 0.30),
        "claude-haiku-5-5": ModelPrice(
            Rates(0.10, 0.50, 0.125, 0.01),
            long_prompt_threshold=100_000,
            long_prompt_rates=Rates(0.50, 2.50, 0.625, 0.05),
        ),
        "claude-haiku-4-5": _price(1.0, 5.0, 1.25, 0.10),
        "claude-3-5-haiku": _price(0.80, 4.0, 1.0, 0.08),
        "claude-3-haiku": _price(0.25, 1.25, 0.30, 0.03),
    }
)

_DATE_SUFFIX = re.compile(r"-\d{8}$")
_CONTEXT_SUFFIX = re.compile(r"\[[^\]]*\]$")


def price_for(model: str, prices: Mapping[str, ModelPrice] = PRICES) -> ModelPrice:
    """The price of `model` by id, ignoring a date or `[1m]` suffix; DEFAULT_PRICE if unknown."""
    name = _CONTEXT_SUFFIX.sub("", model.strip().lower())
    name = _DATE_SUFFIX.sub("", name)
    return prices.get(name, DEFAULT_PRICE)


def cost_usd(model: str, usage: TokenUsage, prices: Mapping[str, ModelPrice] = PRICES) -> float:
    return price_for(model, prices).cost_usd(usage)
