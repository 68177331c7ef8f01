"""The pure contracts: stop reasons, the PRP model and its tool schema, the run states."""

from __future__ import annotations

import pytest

from bot.contracts.lifecycle import FeatureState, TaskState
from bot.contracts.prp import Plan
from bot.contracts.stops import StopKind, StopReason
from bot.db import models


@pytest.mark.parametrize(
    ("reason", "text", "words"),
    [
        (StopReason.finished(), "finished", "finished"),
        (StopReason.budget("turns"), "budget:turns", "stopped at the turn limit (budget:turns)"),
        (StopReason.budget("wall_time"), "budget:wall_time", "stopped at the wall-time limit"),
        (StopReason.error("refusal"), "error:refusal", "stopped: refusal"),
        (StopReason.end_turn(), "end_turn", "stopped (end_turn)"),
    ],
)
def test_a_stop_reason_is_stored_as_text_and_read_back(
    reason: StopReason, text: str, words: str
) -> None:
    assert str(reason) == text
    assert StopReason.parse(text) == reason
    assert reason.describe().startswith(words)


def test_a_stop_reason_nobody_knows_reads_back_as_an_error() -> None:
    assert StopReason.parse("exploded") == StopReason(StopKind.ERROR, "exploded")
    assert StopReason.parse("") == StopReason.error("unknown")


def test_the_submit_plan_schema_is_the_models_fields() -> None:
    schema = Plan.submission_schema()
    assert schema["required"] == ["needs_clarification", "goal"]
    assert "issue_number" not in schema["properties"] and "title" not in schema["properties"]
    assert schema["properties"]["estimate"]["properties"]["size"]["enum"] == [
        "XS",
        "S",
        "M",
        "L",
        "XL",
    ]
    step = schema["properties"]["steps"]["items"]
    assert step["required"] == ["title"] and set(step["properties"]) == {
        "title",
        "details",
        "files",
    }
    assert "$ref" not in str(schema) and "$defs" not in schema


def test_a_stored_plan_reads_back_the_same() -> None:
    plan = Plan.from_dict(
        {
            "issue_number": 3,
            "title": "t",
            "goal": "g",
            "steps": [{"title": "s", "files": ["a.py"]}, {"title": ""}, "junk"],
            "estimate": {"size": "huge", "complexity": "LOW"},
        }
    )
    assert [s.title for s in plan.steps] == ["s"]
    assert (plan.estimate.size, plan.estimate.complexity) == ("M", "low")
    assert Plan.from_dict(plan.to_dict()) == plan


def test_the_store_keeps_every_lifecycle_state_in_its_columns() -> None:
    """The store writes the lifecycle's states as their values: each must fit its column."""
    for states, column in (
        (FeatureState, models.Feature.__table__.c.state),
        (TaskState, models.Task.__table__.c.state),
    ):
        assert max(len(state.value) for state in states) <= column.type.length
