"""The implementation stage: carry out the plan in a real clone, push the branch, open the PR.

The branch is pushed whatever happened, so work is never lost; the PR is a draft while the
validation gates fail. Retries resume the pushed branch and find the open PR instead of
making a second.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.budget import BudgetExceeded
from agents.checkout_setup import exclude_leftovers, exclude_untracked, run_setup
from agents.coder import Coder, CoderResult
from agents.file_tree import render_file_tree
from agents.llm import LLMError
from agents.stages import FeatureView, StepContext, StepResult
from agents.toolbox import Toolbox, feature_budget, repository_key
from agents.tools import CoderTools
from agents.untrusted import sanitize, wrap_untrusted
from agents.workspace import Workspace, branch_name
from bot.contracts import markers
from bot.contracts.lifecycle import Outcome, Stage
from bot.contracts.prp import Plan
from bot.github import RepoClient
from bot.github.errors import scrub


def pr_body(feature: FeatureView, plan_url: str | None, result: CoderResult, stop: str) -> str:
    gates = result.gate_results
    lines = [
        markers.PULL_REQUEST,
        "## Summary",
        "",
        sanitize(result.summary) or "(no summary)",
        "",
        f"Plan: {plan_url}" if plan_url else "Plan: see the plan comment on the issue.",
        "",
        "## Validation",
        "",
    ]
    if gates:
        lines += ["| Command | Result |", "| --- | --- |"]
        for gate in gates:
            verdict = (
                "✅ passed"
                if gate.ok
                else ("⏱️ timed out" if gate.timed_out else f"❌ exit {gate.exit_code}")
            )
            lines.append(f"| `{sanitize(gate.command)}` | {verdict} ({gate.duration_s:.1f}s) |")
    else:
        lines.append("No validation gates ran.")
    if not result.finished or not result.gates_passed:
        lines += ["", f"**This PR is a draft:** the coder {stop}."]
    lines += ["", f"Closes #{feature.issue_number}", "", "<sub>Opened by Agent Factory.</sub>"]
    return scrub("\n".join(lines))


@dataclass
class CoderStage:
    stage = Stage.IMPLEMENT

    async def run(self, ctx: StepContext) -> StepResult:
        toolbox: Toolbox = ctx.tools
        feature, gh, config = ctx.feature, ctx.github, ctx.config
        if not feature.plan:
            return StepResult(
                Outcome.FAILED, "there is no plan to implement; comment `/factory plan`"
            )
        plan = Plan.from_dict(feature.plan)
        info = await gh.get_repository()
        issue = await gh.get_issue(feature.issue_number)
        branch = feature.branch or branch_name(feature.issue_number, issue.title)
        context = await self._repository_context(toolbox, gh, feature, plan, info.default_branch)
        workspace = await toolbox.workspace(feature.installation_id, info.clone_url)
        async with workspace as ws:
            await ws.clone()
            exclude_leftovers(ws)
            base_sha = await ws.head()
            await ws.checkout_branch(branch, base=info.default_branch)
            sandbox = toolbox.sandbox_for(ws.path, ws.git_dir, repository_key(feature))
            if config.setup:
                await ctx.progress("running the setup steps")
                failure = await run_setup(
                    sandbox, ws.path, config.setup, timeout_s=config.setup_timeout_s
                )
                if failure is not None:
                    return StepResult(Outcome.FAILED, failure.summary, details=failure.details)
                await exclude_untracked(ws)
            await ctx.record(branch=branch)
            tools = CoderTools(ws.path, sandbox, protected_paths=config.protected_paths)
            start_sha = await ws.head()

            async def restore() -> None:
                await ws.git("reset", "--hard", "--quiet", start_sha)
                await ws.git("clean", "-fd", "--quiet")

            await ctx.progress("implementing")
            try:
                result = await Coder(
                    toolbox.llm, model=config.model, max_turns=config.budgets.max_turns
                ).implement(
                    workdir=ws.path,
                    plan=plan,
                    tools=tools,
                    gates=config.validation_gates,
                    sandbox=sandbox,
                    budget=feature_budget(config, feature),
                    commit=ws.commit_all,
                    repo_context=context,
                    on_step=ctx.checkpoint,
                    resume_from=ctx.resume,
                    restore=restore,
                )
            except (LLMError, BudgetExceeded) as exc:
                await ws.commit_all(f"WIP: unfinished work on #{feature.issue_number}")
                await self._push_if_changed(ws, base_sha)
                return StepResult(Outcome.FAILED, str(exc))
            pushed = await self._push_if_changed(ws, base_sha)
        stop = result.stop_reason.describe()
        ok = result.finished and result.gates_passed
        if pushed is None:
            return self._result(Outcome.FAILED, f"the coder made no changes; it {stop}", result)
        plan_url = (
            f"{issue.html_url}#issuecomment-{feature.plan_comment_id}"
            if feature.plan_comment_id
            else None
        )
        body = pr_body(feature, plan_url, result, stop)
        title = f"{issue.title} (#{feature.issue_number})"
        pr = await gh.ensure_pull_request(branch, info.default_branch, title, body, draft=not ok)
        if pr.body != body:
            await gh.update_pull_request(pr.number, body=body)
        if feature.pr_number is None:
            await gh.request_reviewers(
                pr.number,
                reviewers=list(config.reviewers.users),
                team_reviewers=config.reviewers.team_slugs,
            )
        await ctx.record(pr_number=pr.number, head_sha=pushed)
        if not ok:
            return self._result(
                Outcome.FAILED, f"the coder {stop}; the branch `{branch}` was pushed", result
            )
        return self._result(
            Outcome.SUCCEEDED,
            f"PR #{pr.number}: {len(result.commits)} commit(s), gates passed",
            result,
        )

    @staticmethod
    async def _repository_context(
        toolbox: Toolbox, gh: RepoClient, feature: FeatureView, plan: Plan, default_branch: str
    ) -> str:
        """What stays fixed for the whole loop, so it sits in the cached prompt prefix: the
        repository's file tree, what the knowledge store finds for the plan, and the round's
        review feedback."""
        tree = await gh.get_tree(default_branch)
        parts = [
            "## Files\n" + render_file_tree([e.path for e in tree.entries if e.type == "blob"])
        ]
        knowledge = await toolbox.context_for(
            feature.repository, f"{plan.title}\n{plan.for_coder()}"
        )
        if knowledge:
            parts.append(knowledge)
        if feature.guidance:
            parts.append(
                "## Feedback to address in this round\n"
                + wrap_untrusted(feature.guidance, source="review feedback")
            )
        return "\n\n".join(parts)

    @staticmethod
    async def _push_if_changed(ws: Workspace, base_sha: str) -> str | None:
        if await ws.head() == base_sha:
            return None
        return str((await ws.push()).sha)

    @staticmethod
    def _result(outcome: Outcome, summary: str, result: CoderResult) -> StepResult:
        gates = "\n".join(
            f"- `{g.command}`: {'passed' if g.ok else f'failed (exit {g.exit_code})'}"
            for g in result.gate_results
        )
        return StepResult(
            outcome,
            summary,
            details=f"Validation gates:\n{gates}" if gates else "",
            cost_usd=result.cost_usd,
            tokens=result.usage.total,
            trajectory=result.trajectory,
        )
