"""The run store: every query about runs (``features``), their steps (``tasks``) and the audit
log, each one transaction. The queries live in a module per area; this class joins them.

A transition applies only if the run is still where its caller read it (state, round, attempt),
so two workers acting on one run cannot both move it. The store also remembers what the status
projection wrote to GitHub, so nothing is looked up there again.
"""

from __future__ import annotations

from bot.store.features import (
    FeatureQueries,
    Moved,
    Started,
    StartRaced,
    Where,
    active_key,
    view_of,
    where,
)
from bot.store.shown import CheckRunMemo, ShownQueries
from bot.store.steps import StepQueries, StepStart


class RunStore(FeatureQueries, StepQueries, ShownQueries):
    """``RunStore(db)``: runs, steps, audit and what GitHub shows of them."""


__all__ = [
    "CheckRunMemo",
    "Moved",
    "RunStore",
    "StartRaced",
    "Started",
    "StepStart",
    "Where",
    "active_key",
    "view_of",
    "where",
]
