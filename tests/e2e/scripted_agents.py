"""Scripted stage agents: deterministic stand-ins for the LLM agents in end-to-end tests.

They make the same kinds of GitHub effects the real agents make (a plan comment, a pushed
branch and a PR, a review per round) through the same clients, so the coordinator's
exactly-once guarantees are tested on real effects. With ``E2E_CRASH_DIR`` set, each stage
kills its own process (SIGKILL) once, right after its first GitHub effect.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from agents.stages import StepContext, StepResult
from agents.workspace import branch_name
from bot.contracts.lifecycle import Outcome, Stage

PLAN = {
    "issue_number": 0,
    "title": "scripted",
    "goal": "Add hello.py",
    "steps": [{"title": "Write hello.py", "details": "print a greeting", "files": ["hello.py"]}],
}


def crash_once(stage: str) -> None:
    folder = os.environ.get("E2E_CRASH_DIR")
    if not folder:
        return
    marker = Path(folder) / stage
    if marker.exists():
        return
    marker.write_text("crashed here once")
    os.kill(os.getpid(), signal.SIGKILL)


def review_marker(feature_id: int, round_: int) -> str:
    return f"<!-- agent-factory:review:{feature_id}:{round_} -->"


class ScriptedPlanner:
    stage = Stage.PLAN

    async def run(self, ctx: StepContext) -> StepResult:
        marker = f"<!-- agent-factory:plan:{ctx.feature.id} -->"
        comment = await ctx.github.upsert_marked_comment(
            ctx.feature.issue_number, marker, f"{marker}\n## Plan\n- [ ] Write hello.py"
        )
        crash_once("plan")
        await ctx.record(plan=PLAN, plan_comment_id=comment.id)
        return StepResult(Outcome.SUCCEEDED, "1 step", cost_usd=0.01, tokens=1000)


class ScriptedCoder:
    stage = Stage.IMPLEMENT

    async def run(self, ctx: StepContext) -> StepResult:
        feature, gh = ctx.feature, ctx.github
        info = await gh.get_repository()
        issue = await gh.get_issue(feature.issue_number)
        branch = feature.branch or branch_name(feature.issue_number, issue.title)
        workspace = await ctx.tools.workspace(feature.installation_id, info.clone_url)
        async with workspace as ws:
            await ws.clone()
            await ws.checkout_branch(branch, base=info.default_branch)
            (ws.path / "hello.py").write_text(f"print('hello, round {feature.round}')\n")
            await ws.commit_all(f"Write hello.py (round {feature.round})")
            pushed = await ws.push()
        # What a model loop hands over after each turn: one call, as much as the whole step costs.
        await ctx.checkpoint(
            [{"type": "turn", "response": {"cost_usd": 0.02, "usage": {"output_tokens": 2000}}}]
        )
        crash_once("implement")
        pr = await gh.ensure_pull_request(
            branch, info.default_branch, issue.title, f"Closes #{feature.issue_number}"
        )
        await ctx.record(branch=branch, pr_number=pr.number, head_sha=pushed.sha)
        return StepResult(Outcome.SUCCEEDED, f"PR #{pr.number}", cost_usd=0.02, tokens=2000)


class ScriptedReviewer:
    stage = Stage.REVIEW

    def __init__(self, verdicts: list[Outcome] | None = None) -> None:
        self.verdicts = verdicts or []

    async def run(self, ctx: StepContext) -> StepResult:
        feature, gh = ctx.feature, ctx.github
        assert feature.pr_number is not None
        marker = review_marker(feature.id, feature.round)
        existing = (
            await gh.gh.rest.pulls.async_list_reviews(gh.owner, gh.repo, feature.pr_number)
        ).parsed_data
        if not any(marker in (r.body or "") for r in existing):
            await gh.create_review(feature.pr_number, body=f"{marker}\nLooks fine.")
        crash_once("review")
        verdict = (
            self.verdicts[feature.round]
            if feature.round < len(self.verdicts)
            else Outcome.SUCCEEDED
        )
        return StepResult(verdict, "reviewed")


class ScriptedTester:
    stage = Stage.TEST

    async def run(self, ctx: StepContext) -> StepResult:
        crash_once("test")
        return StepResult(Outcome.SUCCEEDED, "1 passed")


class ScriptedDeployer:
    stage = Stage.DEPLOY

    async def run(self, ctx: StepContext) -> StepResult:
        crash_once("deploy")
        return StepResult(Outcome.SUCCEEDED, "deployed to staging")


def scripted_agents() -> dict[Stage, object]:
    return {
        Stage.PLAN: ScriptedPlanner(),
        Stage.IMPLEMENT: ScriptedCoder(),
        Stage.REVIEW: ScriptedReviewer(),
        Stage.TEST: ScriptedTester(),
        Stage.DEPLOY: ScriptedDeployer(),
    }


class FailingOnceCoder(ScriptedCoder):
    """Fails the first implementation of each listed issue, then works: for `/factory retry`."""

    def __init__(self, issues: set[int] | None = None) -> None:
        self.issues: set[int] = set(issues or ())
        self.failed: list[int] = []

    async def run(self, ctx: StepContext) -> StepResult:
        number = ctx.feature.issue_number
        if number in self.issues and number not in self.failed:
            self.failed.append(number)
            # A failed attempt still paid for its model calls.
            return StepResult(
                Outcome.FAILED,
                "scripted failure",
                details="fails once on purpose",
                cost_usd=0.05,
                tokens=5000,
            )
        return await super().run(ctx)


class BlockingCoder:
    """Stays in implementation until its job is cancelled, and notes when each happened."""

    stage = Stage.IMPLEMENT

    def __init__(self, hold_s: float = 60.0) -> None:
        self.hold_s = hold_s
        self.started_at: float | None = None
        self.cancelled_at: float | None = None

    async def run(self, ctx: StepContext) -> StepResult:
        self.started_at = time.monotonic()
        try:
            await asyncio.sleep(self.hold_s)
        except asyncio.CancelledError:
            self.cancelled_at = time.monotonic()
            raise
        return StepResult(Outcome.SUCCEEDED, f"held for {self.hold_s}s without being cancelled")


class GuidedPlanner:
    """Writes the guidance it was given into its plan comment, as the real planner follows it."""

    stage = Stage.PLAN

    async def run(self, ctx: StepContext) -> StepResult:
        marker = f"<!-- agent-factory:plan:{ctx.feature.id} -->"
        guidance = ctx.feature.guidance or "none"
        comment = await ctx.github.upsert_marked_comment(
            ctx.feature.issue_number,
            marker,
            f"{marker}\n## Plan\n- [ ] Write hello.py\n\nGuidance followed: {guidance}",
        )
        await ctx.record(plan=PLAN, plan_comment_id=comment.id)
        return StepResult(Outcome.SUCCEEDED, "1 step", cost_usd=0.01, tokens=1000)
