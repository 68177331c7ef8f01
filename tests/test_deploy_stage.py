"""The deploy stage's crash safety and its reading of the workflow's inputs, without a server."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from agents.deploy_stage import DeployerStage, declared_inputs, dispatched_runs
from bot.contracts.lifecycle import Outcome


class Actions:
    """Workflow runs that end as told; records every dispatch."""

    def __init__(self, conclusions: dict[int, str]) -> None:
        self.conclusions = conclusions
        self.dispatches: list[tuple[str, dict[str, str]]] = []

    async def get_repository(self) -> Any:
        return SimpleNamespace(default_branch="main")

    async def get_file(self, path: str, ref: str | None = None) -> Any:
        return SimpleNamespace(text="on:\n  workflow_dispatch:\n    inputs: {environment: {}}\n")

    async def dispatch_workflow(self, workflow: str, ref: str, inputs: dict[str, str]) -> Any:
        self.dispatches.append((ref, inputs))
        run_id = 100 + len(self.dispatches)
        self.conclusions.setdefault(run_id, "success")
        return SimpleNamespace(run_id=run_id, html_url=f"https://runs/{run_id}")

    async def get_workflow_run(self, run_id: int) -> Any:
        return SimpleNamespace(
            status="completed",
            conclusion=self.conclusions[run_id],
            html_url=f"https://runs/{run_id}",
        )


def context(gh: Actions, resume: list[dict[str, Any]] | None) -> Any:
    async def nothing(*_: Any, **__: Any) -> None:
        return None

    return SimpleNamespace(
        feature=SimpleNamespace(branch="factory/issue-1-x", head_sha="abc1234def"),
        github=gh,
        config=SimpleNamespace(
            deploy=SimpleNamespace(
                workflow="deploy.yml", environments=["staging"], default_environment=None, ref=None
            )
        ),
        resume=resume,
        checkpoint=nothing,
        progress=nothing,
    )


async def test_a_retry_waits_for_the_run_its_crashed_try_dispatched() -> None:
    gh = Actions({7: "success"})
    checkpoint = [{"type": "deploy", "run_id": 7, "rollback": False}]
    result = await DeployerStage(poll_s=0).run(context(gh, checkpoint))
    assert result.outcome is Outcome.SUCCEEDED and gh.dispatches == []


async def test_a_crash_during_the_rollback_resumes_the_rollback_not_the_deploy() -> None:
    gh = Actions({7: "failure", 8: "success"})
    checkpoint = [
        {"type": "deploy", "run_id": 7, "rollback": False},
        {"type": "deploy", "run_id": 8, "rollback": True},
    ]
    result = await DeployerStage(poll_s=0).run(context(gh, checkpoint))
    assert result.outcome is Outcome.FAILED and "rolled back" in result.summary
    assert gh.dispatches == []


async def test_a_first_try_dispatches_with_only_the_declared_inputs() -> None:
    gh = Actions({})
    result = await DeployerStage(poll_s=0).run(context(gh, None))
    assert result.outcome is Outcome.SUCCEEDED
    assert gh.dispatches == [("factory/issue-1-x", {"environment": "staging"})]


def test_checkpoint_entries_other_than_deploys_are_ignored() -> None:
    assert dispatched_runs([{"type": "turn"}, {"type": "deploy", "run_id": "x"}]) == []
    assert dispatched_runs(None) == []


async def test_inputs_are_read_from_the_workflow_file_leniently() -> None:
    async def declared(text: str | None) -> frozenset[str]:
        async def get_file(path: str, ref: str | None = None) -> Any:
            return None if text is None else SimpleNamespace(text=text)

        return await declared_inputs(SimpleNamespace(get_file=get_file), "d.yml", "main")

    assert await declared("on:\n  workflow_dispatch:\n    inputs: {a: {}, b: {}}\n") == {"a", "b"}
    assert await declared("on: workflow_dispatch\n") == frozenset()
    assert await declared("on: [push\n") == frozenset()
    assert await declared(None) == frozenset()
