"""The deployment stage: the repository's own GitHub Actions workflow deploys the PR's head.

The bot does not deploy anything itself: it dispatches `deploy.workflow` (from
.github/factory.yml) on the PR's branch, waits for that run to end, and if it fails, rolls back
by dispatching the same workflow on the default branch, the code that is released. Inputs are
passed only when the workflow declares them (GitHub refuses undeclared ones): `environment`,
`ref`, `sha` and, for the rollback, `rollback: "true"`.

The dispatched run's id is checkpointed with the task, so a retry after a crash waits for that
run instead of deploying a second time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from agents.stages import StepContext, StepResult
from bot.contracts.lifecycle import Outcome, Stage
from bot.github import RepoClient
from bot.github.models import WorkflowRun

WORKFLOW_DIR = ".github/workflows"


@dataclass
class DeployerStage:
    stage = Stage.DEPLOY
    poll_s: float = 5.0
    # Within the step's own limit (FACTORY_JOB_TIMEOUT_S, 1800 s by default).
    timeout_s: float = 1500.0

    async def run(self, ctx: StepContext) -> StepResult:
        feature, gh, deploy = ctx.feature, ctx.github, ctx.config.deploy
        workflow = deploy.workflow
        if not workflow:
            return StepResult(Outcome.FAILED, "no deploy workflow is configured (deploy.workflow)")
        if not feature.branch or not feature.head_sha:
            return StepResult(Outcome.FAILED, "there is no pushed branch to deploy")
        environment = deploy.default_environment or next(iter(deploy.environments), None)
        ref = deploy.ref or feature.branch
        # The workflow as the default branch has it (no ref: GitHub reads the default branch).
        declared = await declared_inputs(gh, workflow)
        done = dispatched_runs(ctx.resume)
        history: list[dict[str, Any]] = [{"type": "deploy", **d} for d in done]

        async def dispatch(on: str, sha: str | None, rollback: bool) -> int:
            wanted = {"environment": environment, "ref": on, "sha": sha}
            if rollback:
                wanted["rollback"] = "true"
            inputs = {k: v for k, v in wanted.items() if k in declared and v}
            started = await gh.dispatch_workflow(workflow, on, inputs)
            run_id = started.run_id or await self._newest_run(gh, workflow, on)
            history.append({"type": "deploy", "run_id": run_id, "rollback": rollback})
            await ctx.checkpoint(list(history))
            return run_id

        where = f" to {environment}" if environment else ""
        deploy_id = next((d["run_id"] for d in done if not d["rollback"]), None)
        if deploy_id is None:
            await ctx.progress(f"deploying{where}")
            deploy_id = await dispatch(ref, feature.head_sha, rollback=False)
        run = await self._wait(gh, deploy_id)
        if run.conclusion == "success":
            return StepResult(
                Outcome.SUCCEEDED,
                f"deployed `{feature.head_sha[:7]}`{where}",
                details=f"Workflow run: {run.html_url}",
                trajectory=history,
            )
        # Only a rollback needs the default branch's name.
        info = await gh.get_repository()
        rollback_id = next((d["run_id"] for d in done if d["rollback"]), None)
        if rollback_id is None:
            await ctx.progress(f"rolling back{where}")
            rollback_id = await dispatch(info.default_branch, None, rollback=True)
        rolled = await self._wait(gh, rollback_id)
        outcome = "rolled back" if rolled.conclusion == "success" else "the rollback also failed"
        return StepResult(
            Outcome.FAILED,
            f"the deploy workflow run ended {run.conclusion or 'without a result'}; {outcome} "
            f"to `{info.default_branch}`",
            details=f"Deploy run: {run.html_url}\nRollback run: {rolled.html_url}",
            trajectory=history,
        )

    async def _wait(self, gh: RepoClient, run_id: int) -> WorkflowRun | _TimedOut:
        deadline = time.monotonic() + self.timeout_s
        while True:
            run = await gh.get_workflow_run(run_id)
            if run.status == "completed":
                return run
            if time.monotonic() >= deadline:
                return _TimedOut(run.html_url)
            await asyncio.sleep(self.poll_s)

    @staticmethod
    async def _newest_run(gh: RepoClient, workflow: str, branch: str) -> int:
        # GitHub (GHES) that does not name the run it started: the newest dispatch on the branch.
        runs = await gh.list_workflow_runs(workflow, branch=branch, event="workflow_dispatch")
        if not runs:
            raise RuntimeError(f"the dispatched {workflow} run cannot be found")
        return int(runs[0].id)


@dataclass(frozen=True)
class _TimedOut:
    html_url: str
    status: str = "completed"
    conclusion: str = "timed_out"


def dispatched_runs(trajectory: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """The runs an earlier try of this step dispatched, from its checkpoint."""
    return [
        {"run_id": int(step["run_id"]), "rollback": bool(step.get("rollback"))}
        for step in trajectory or []
        if step.get("type") == "deploy" and isinstance(step.get("run_id"), int)
    ]


async def declared_inputs(gh: RepoClient, workflow: str, ref: str | None = None) -> frozenset[str]:
    """The `workflow_dispatch` inputs the workflow file declares (GitHub rejects others), at
    ``ref`` (the default branch if None)."""
    found = await gh.get_file(f"{WORKFLOW_DIR}/{workflow}", ref=ref)
    if found is None:
        return frozenset()
    try:
        document = yaml.safe_load(found.text)
    except yaml.YAMLError:
        return frozenset()
    if not isinstance(document, dict):
        return frozenset()
    # YAML 1.1 reads a bare `on:` key as True.
    on = document.get("on", document.get(True))
    dispatch = on.get("workflow_dispatch") if isinstance(on, dict) else None
    inputs = dispatch.get("inputs") if isinstance(dispatch, dict) else None
    return frozenset(str(name) for name in inputs) if isinstance(inputs, dict) else frozenset()
