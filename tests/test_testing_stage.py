"""The tests stage's edges that need no repository: no branch, no gates."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from agents.testing_stage import TesterStage, failure_feedback
from bot.contracts.lifecycle import Outcome


def context(branch: str | None, gates: list[str]) -> Any:
    async def unused(*_: Any, **__: Any) -> Any:
        raise AssertionError("nothing should be cloned or recorded")

    return SimpleNamespace(
        feature=SimpleNamespace(branch=branch, installation_id=1),
        github=SimpleNamespace(get_repository=unused),
        config=SimpleNamespace(validation_gates=gates, setup=[], setup_timeout_s=60),
        tools=SimpleNamespace(workspace=unused),
        record=unused,
        progress=unused,
    )


async def test_without_gates_the_check_passes_and_says_how_to_add_them() -> None:
    result = await TesterStage().run(context("factory/issue-1-x", []))
    assert result.outcome is Outcome.SUCCEEDED
    assert "no validation gates" in result.summary and "validation_gates" in result.details


async def test_without_a_pushed_branch_there_is_nothing_to_test() -> None:
    result = await TesterStage().run(context(None, ["pytest"]))
    assert result.outcome is Outcome.FAILED and "no pushed branch" in result.summary


def test_feedback_names_each_failing_gate_with_its_output_and_hides_secrets() -> None:
    failed = SimpleNamespace(
        command="pytest -q",
        exit_code=1,
        timed_out=False,
        stdout="E   AssertionError: 4 != 5",
        stderr="token ghs_abcdefghijklmnopqrstuvwxyz0123456789 leaked",
    )
    text = failure_feedback([failed], "0123456789abcdef")
    assert "`pytest -q` (exit code 1)" in text and "AssertionError: 4 != 5" in text
    assert "ghs_abcdefghijklmnopqrstuvwxyz0123456789" not in text
