"""How an agent's tool loop ended: one typed value, shown as words once.

A trajectory stores the reason as text (``str(reason)``: "finished", "end_turn",
"budget:<limit>", "error:<what>"); :meth:`StopReason.parse` reads such a stored value back.
Everything else passes the typed value around and never looks inside the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StopKind(StrEnum):
    FINISHED = "finished"  # a tool reported the task finished
    END_TURN = "end_turn"  # the model stopped calling tools (after one nudge)
    BUDGET = "budget"  # a limit of the loop or the task's budget was reached
    ERROR = "error"  # the model call failed or refused, or the agent judged the end a failure


# Budget limit names (agents.budget) as a reader says them.
_LIMIT_WORDS = {
    "turns": "the turn limit",
    "dollars": "the dollar limit",
    "tokens": "the token limit",
    "wall_time": "the wall-time limit",
}


@dataclass(frozen=True)
class StopReason:
    kind: StopKind
    # The limit for BUDGET ("turns", "dollars", ...), what went wrong for ERROR; else "".
    detail: str = ""

    @classmethod
    def finished(cls) -> StopReason:
        return cls(StopKind.FINISHED)

    @classmethod
    def end_turn(cls) -> StopReason:
        return cls(StopKind.END_TURN)

    @classmethod
    def budget(cls, limit: str) -> StopReason:
        return cls(StopKind.BUDGET, limit)

    @classmethod
    def error(cls, what: str) -> StopReason:
        return cls(StopKind.ERROR, what)

    @classmethod
    def parse(cls, text: str) -> StopReason:
        """The reason a stored trajectory recorded (see ``__str__``)."""
        kind, _, detail = text.partition(":")
        if kind in (StopKind.BUDGET, StopKind.ERROR):
            return cls(StopKind(kind), detail)
        if kind in (StopKind.FINISHED, StopKind.END_TURN) and not detail:
            return cls(StopKind(kind))
        return cls.error(text or "unknown")

    @property
    def is_finished(self) -> bool:
        return self.kind is StopKind.FINISHED

    def __str__(self) -> str:
        if self.kind in (StopKind.BUDGET, StopKind.ERROR):
            return f"{self.kind.value}:{self.detail}"
        return self.kind.value

    def describe(self, detail: str = "") -> str:
        """Words for the status comment and the PR body ("stopped at the turn limit ...")."""
        if self.kind is StopKind.FINISHED:
            return "finished"
        if self.kind is StopKind.BUDGET:
            return f"stopped at {_LIMIT_WORDS.get(self.detail, self.detail)} ({self})"
        if self.kind is StopKind.ERROR:
            return f"stopped: {self.detail}"
        return f"stopped ({self}): {detail}" if detail else f"stopped ({self})"
