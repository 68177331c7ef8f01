"""The run lifecycle lives in :mod:`bot.contracts.lifecycle`; these names are re-exported for
callers outside the worker (benchmarks, knowledge tests) until they import it from there."""

from bot.contracts.lifecycle import (
    STAGE_ORDER,
    Decision,
    FeatureState,
    Outcome,
    Stage,
    TaskState,
    decide,
    next_enabled,
    stage_for_check,
    stage_for_state,
)

__all__ = [
    "STAGE_ORDER",
    "Decision",
    "FeatureState",
    "Outcome",
    "Stage",
    "TaskState",
    "decide",
    "next_enabled",
    "stage_for_check",
    "stage_for_state",
]
