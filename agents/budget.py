"""Per-task spending limits (tokens, dollars, model turns, wall time) and what was spent so far.

One `Budget` follows a task through every model call its agents make. `LLMClient.create` checks it
before each call and records each call's usage after it, so a limit stops the work at the next call
boundary: spending can pass a limit by at most the one call that was already in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Names used in BudgetExceeded.limit and in stop reasons ("budget:<limit>").
LIMIT_TURNS = "turns"
LIMIT_DOLLARS = "dollars"
LIMIT_TOKENS = "tokens"
LIMIT_WALL_TIME = "wall_time"


class BudgetExceeded(Exception):
    """A limit is reached; `limit` names which one, `detail` says by how much."""

    def __init__(self, limit: str, detail: str) -> None:
        super().__init__(f"budget limit '{limit}' reached: {detail}")
        self.limit = limit
        self.detail = detail


@dataclass(frozen=True)
class TokenUsage:
    """Token counts as the Messages API reports them: `input_tokens` excludes cached tokens."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        """Every token of the prompt, however it was billed."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenUsage:
        return cls(
            input_tokens=int(data.get("input_tokens", 0)),
            output_tokens=int(data.get("output_tokens", 0)),
            cache_read_tokens=int(data.get("cache_read_tokens", 0)),
            cache_write_tokens=int(data.get("cache_write_tokens", 0)),
        )


@dataclass
class Budget:
    """Limits (None: unlimited) and the running totals they are checked against.

    `max_tokens` counts every token processed (prompt, cached or not, plus output). Wall time runs
    from the budget's creation, so build one when the task starts.
    """

    max_usd: float | None = None
    max_tokens: int | None = None
    max_turns: int | None = None
    max_seconds: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    spent_usd: float = 0.0
    tokens: TokenUsage = field(default_factory=TokenUsage)
    turns: int = 0
    started_at: float = field(default=-1.0, repr=False)

    def __post_init__(self) -> None:
        if self.started_at < 0:
            self.started_at = self.clock()

    @property
    def elapsed_s(self) -> float:
        return self.clock() - self.started_at

    def check(self) -> None:
        """Raise BudgetExceeded if another model call would start beyond a limit."""
        if self.max_turns is not None and self.turns >= self.max_turns:
            raise BudgetExceeded(LIMIT_TURNS, f"{self.turns} of {self.max_turns} model turns used")
        if self.max_usd is not None and self.spent_usd >= self.max_usd:
            raise BudgetExceeded(
                LIMIT_DOLLARS, f"${self.spent_usd:.4f} spent of ${self.max_usd:.4f} allowed"
            )
        if self.max_tokens is not None and self.tokens.total >= self.max_tokens:
            raise BudgetExceeded(
                LIMIT_TOKENS, f"{self.tokens.total} tokens used of {self.max_tokens} allowed"
            )
        if self.max_seconds is not None and self.elapsed_s >= self.max_seconds:
            raise BudgetExceeded(
                LIMIT_WALL_TIME,
                f"{self.elapsed_s:.1f} s elapsed of {self.max_seconds:.1f} s allowed",
            )

    def record(self, usage: TokenUsage, cost_usd: float) -> None:
        self.turns += 1
        self.tokens = self.tokens + usage
        self.spent_usd += cost_usd

    def to_dict(self) -> dict[str, Any]:
        return {
            "limits": {
                "max_usd": self.max_usd,
                "max_tokens": self.max_tokens,
                "max_turns": self.max_turns,
                "max_seconds": self.max_seconds,
            },
            "spent_usd": round(self.spent_usd, 6),
            "tokens": self.tokens.to_dict(),
            "turns": self.turns,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def spent_in(trajectory: Sequence[Mapping[str, Any]]) -> tuple[float, int]:
    """Dollars and tokens of the model calls a (possibly unfinished) trajectory records."""
    cost, tokens = 0.0, 0
    for step in trajectory:
        # A resumed run carries the turns it continues from; they were counted when made.
        if step.get("type") != "turn" or step.get("resumed"):
            continue
        response = step.get("response")
        if isinstance(response, Mapping):
            cost += float(response.get("cost_usd") or 0.0)
            tokens += TokenUsage.from_dict(response.get("usage") or {}).total
    return cost, tokens
