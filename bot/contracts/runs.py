"""A run as the agents and the status projection see it: a read-only snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FeatureView:
    """A snapshot of one run (a ``features`` row) when it was read."""

    id: int
    installation_id: int
    repository: str
    issue_number: int
    round: int
    branch: str | None
    pr_number: int | None
    head_sha: str | None
    plan: Mapping[str, Any] | None
    triggered_by: str | None
    guidance: str | None = None
    cost_usd: float = 0.0
    tokens: int = 0
    plan_comment_id: int | None = None

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.repository.split("/", 1)[1]


@dataclass(frozen=True)
class RunFacts:
    """What a step learns about its run and stores at once (``None``: left as it is)."""

    branch: str | None = None
    pr_number: int | None = None
    head_sha: str | None = None
    plan: Mapping[str, Any] | None = None
    plan_comment_id: int | None = None
    # What the next implementation round must address (a stage's findings).
    guidance: str | None = None

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}
