"""The feature state machine: which stage follows which, and what a stage's outcome means.

Pure functions over plain values so the rules can be read and tested without a database,
a queue or GitHub. The coordinator persists what these functions decide.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum


class FeatureState(StrEnum):
    """Where a run is; stored as its value in ``features.state``."""

    QUEUED = "queued"  # waiting for a free slot in its installation
    PLANNING = "planning"
    AWAITING_APPROVAL = "awaiting_approval"
    AWAITING_CLARIFICATION = "awaiting_clarification"
    IMPLEMENTATION = "implementation"
    REVIEW = "review"
    TESTING = "testing"
    DEPLOYMENT = "deployment"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (FeatureState.COMPLETED, FeatureState.FAILED, FeatureState.CANCELLED)


class TaskState(StrEnum):
    """Where one step is; stored as its value in ``tasks.state``."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Stage(StrEnum):
    PLAN = "plan"
    IMPLEMENT = "implement"
    REVIEW = "review"
    TEST = "test"
    DEPLOY = "deploy"

    @property
    def state(self) -> FeatureState:
        return _STAGE_STATE[self]

    @property
    def title(self) -> str:  # type: ignore[override]  # the stage's name as people read it
        return _STAGE_TITLE[self]

    @property
    def check_name(self) -> str | None:
        """The check run that mirrors this stage on the PR's head commit."""
        return _STAGE_CHECK.get(self)


STAGE_ORDER: tuple[Stage, ...] = (
    Stage.PLAN,
    Stage.IMPLEMENT,
    Stage.REVIEW,
    Stage.TEST,
    Stage.DEPLOY,
)

_STAGE_STATE = {
    Stage.PLAN: FeatureState.PLANNING,
    Stage.IMPLEMENT: FeatureState.IMPLEMENTATION,
    Stage.REVIEW: FeatureState.REVIEW,
    Stage.TEST: FeatureState.TESTING,
    Stage.DEPLOY: FeatureState.DEPLOYMENT,
}
_STAGE_TITLE = {
    Stage.PLAN: "Plan",
    Stage.IMPLEMENT: "Implementation",
    Stage.REVIEW: "Review",
    Stage.TEST: "Tests",
    Stage.DEPLOY: "Deployment",
}
_STAGE_CHECK = {
    Stage.PLAN: "Agent Factory / plan",
    Stage.REVIEW: "Agent Factory / review",
    Stage.TEST: "Agent Factory / tests",
    Stage.DEPLOY: "Agent Factory / deploy",
}


def stage_for_state(state: FeatureState) -> Stage | None:
    for stage, stage_state in _STAGE_STATE.items():
        if stage_state == state:
            return stage
    return None


def stage_for_check(name: str) -> Stage | None:
    for stage, check in _STAGE_CHECK.items():
        if check == name:
            return stage
    return None


class Outcome(StrEnum):
    """What a stage agent reports back to the coordinator."""

    SUCCEEDED = "succeeded"
    CHANGES_REQUESTED = "changes_requested"  # review asked for changes / tests failed
    NEEDS_INPUT = "needs_input"  # the planner has questions
    FAILED = "failed"


@dataclass(frozen=True)
class Decision:
    """Where the run goes next. ``stage`` is set when a step must be enqueued."""

    state: FeatureState
    stage: Stage | None
    round: int
    reason: str


def next_enabled(after: Stage | None, enabled: Collection[Stage]) -> Stage | None:
    """The first enabled stage after ``after`` (or the first at all), skipping the rest."""
    start = 0 if after is None else STAGE_ORDER.index(after) + 1
    for stage in STAGE_ORDER[start:]:
        if stage in enabled:
            return stage
    return None


def _advance(after: Stage, enabled: Collection[Stage], round_: int, reason: str) -> Decision:
    nxt = next_enabled(after, enabled)
    if nxt is None:
        return Decision(FeatureState.COMPLETED, None, round_, reason)
    return Decision(nxt.state, nxt, round_, reason)


def decide(
    stage: Stage,
    outcome: Outcome,
    *,
    round_: int,
    max_rounds: int,
    enabled: Collection[Stage],
    require_plan_approval: bool,
    detail: str = "",
) -> Decision:
    """The transition after ``stage`` finished with ``outcome`` in ``round_`` (0-based)."""
    if outcome is Outcome.FAILED:
        return Decision(
            FeatureState.FAILED, None, round_, f"{stage.title} failed: {detail}".strip()
        )
    if stage is Stage.PLAN:
        if outcome is Outcome.NEEDS_INPUT:
            return Decision(
                FeatureState.AWAITING_CLARIFICATION, None, round_, "the plan has open questions"
            )
        if require_plan_approval:
            return Decision(
                FeatureState.AWAITING_APPROVAL, None, round_, "waiting for `/factory approve`"
            )
        return _advance(stage, enabled, round_, "plan written")
    if outcome is Outcome.CHANGES_REQUESTED and stage in (Stage.REVIEW, Stage.TEST):
        what = "review asked for changes" if stage is Stage.REVIEW else "tests failed"
        if round_ + 1 >= max_rounds:
            return Decision(
                FeatureState.FAILED,
                None,
                round_,
                f"{what} in round {round_ + 1} of {max_rounds}; giving up after {max_rounds} rounds",
            )
        return Decision(FeatureState.IMPLEMENTATION, Stage.IMPLEMENT, round_ + 1, what)
    if outcome is Outcome.NEEDS_INPUT:
        return Decision(stage.state, None, round_, f"{stage.title} is waiting for input")
    return _advance(stage, enabled, round_, f"{stage.title.lower()} done")
