"""The implementation stage: carry out the plan in a real clone, push the branch, open the PR.

The branch is pushed whatever happened, so work is never lost; the PR is a draft while the
validation gates fail. Retries resume the pushed branch and find the open PR instead of
making a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.budget import BudgetExceeded
from agents.coder import Coder, CoderResult
from agents.lifecycle import Outcome, Stage
from agents.llm import LLMError
from agents.planner import PlanResult, render_file_tree
from agents.sandbox import CommandResult, Sandbox, SandboxUnavailable
from agents.stages import FeatureView, StepContext, StepResult
from agents.toolbox import Toolbox, describe_stop, feature_budget
from agents.tools import CoderTools
from agents.untrusted import sanitize, wrap_untrusted
from agents.workspace import Workspace, branch_name
from bot.github.errors import scrub

# What commands leave in a work tree (bytecode, test and linter caches, installed packages).
# A repository's own .gitignore may not list them, and `commit_all` stages everything, so without
# this a model that ran the tests would commit their caches into the pull request.
COMMAND_LEFTOVERS: tuple[str, ...] = (
    "__pycache__/",
    "*.py[cod]",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".hypothesis/",
    ".tox/",
    ".nox/",
    ".coverage",
    "node_modules/",
    ".venv/",
    "venv/",
)

# How much of a failed setup command's output the step's details keep, and the one line of it
# the status comment shows.
_SETUP_OUTPUT_TAIL = 3000
_SETUP_LINE_LIMIT = 200


def exclude_leftovers(workdir: Path) -> None:
    """List COMMAND_LEFTOVERS in the clone's .git/info/exclude (files already tracked stay)."""
    _exclude(workdir, "caches commands leave behind", COMMAND_LEFTOVERS)


def _exclude(workdir: Path, why: str, patterns: Sequence[str]) -> None:
    exclude = workdir / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    existing = exclude.read_text() if exclude.is_file() else ""
    missing = [p for p in patterns if p not in existing.splitlines()]
    if missing:
        text = existing if not existing or existing.endswith("\n") else existing + "\n"
        block = "\n".join([f"# Agent Factory: {why}", *missing])
        exclude.write_text(f"{text}{block}\n")


def _exclude_pattern(path: str) -> str:
    """An .git/info/exclude line matching exactly `path` (relative to the root) and nothing else:
    anchored with `/`, glob characters and trailing spaces (which git would drop) escaped."""
    escaped = "".join(f"\\{c}" if c in "*?[\\" else c for c in path)
    stem = escaped.rstrip(" ")
    return "/" + stem + "\\ " * (len(escaped) - len(stem))


async def exclude_untracked(ws: Workspace) -> None:
    """Add every untracked, not yet ignored path to .git/info/exclude: after the setup steps,
    these are what they wrote (an egg-info, a downloaded tool), which belongs in no commit."""
    listed = await ws.git("ls-files", "--others", "--exclude-standard", "--directory", "-z")
    paths = [_exclude_pattern(p) for p in listed.split("\0") if p]
    _exclude(ws.path, "written by the setup steps", paths)


@dataclass(frozen=True)
class SetupFailure:
    summary: str
    details: str


async def run_setup(
    sandbox: Sandbox,
    workdir: Path,
    commands: Sequence[str],
    *,
    timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> SetupFailure | None:
    """Run the repository's setup commands in order, with network, sharing `timeout_s`.

    Stops at the first that fails or runs out of time; None when all of them passed.
    """
    deadline = clock() + timeout_s
    for number, command in enumerate(commands, start=1):
        step = f"setup step {number} of {len(commands)} `{scrub(sanitize(command))}`"
        left = deadline - clock()
        if left <= 0:
            return SetupFailure(
                f"{step} did not start: the setup steps used up `setup_timeout_s` "
                f"({timeout_s:g}s); the coder was not started",
                "",
            )
        try:
            result = await sandbox.run(command, cwd=workdir, timeout_s=left, network=True)
        except SandboxUnavailable as exc:
            return SetupFailure(f"{step} could not run: {exc}; the coder was not started", "")
        if not result.ok:
            return _setup_failure(step, result, timeout_s)
    return None


def _setup_failure(step: str, result: CommandResult, timeout_s: float) -> SetupFailure:
    if result.timed_out:
        how = f"timed out: the setup steps may take {timeout_s:g}s together (`setup_timeout_s`)"
    else:
        how = f"failed with exit code {result.exit_code}"
    # Package managers print their errors last; stderr first, stdout when it said nothing.
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines()]
    last = next((line for line in reversed(lines) if line), "")
    quoted = scrub(sanitize(last)).strip()[:_SETUP_LINE_LIMIT].replace("`", "'")
    said = f": `{quoted}`" if quoted else ""
    streams = [
        f"--- {name} ---\n{text.strip()}"
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr))
        if text.strip()
    ]
    tail = scrub(sanitize("\n".join(streams)))[-_SETUP_OUTPUT_TAIL:]
    fence = "~~~~" if "```" in tail else "```"
    details = (
        f"How the setup step ended (the end of its output):\n{fence}\n{tail}\n{fence}"
        if tail
        else "The setup command printed nothing."
    )
    return SetupFailure(f"{step} {how}{said}; the coder was not started", details)


def pr_body(feature: FeatureView, plan_url: str | None, result: CoderResult, stop: str) -> str:
    gates = result.gate_results
    lines = [
        "<!-- agent-factory:pr -->",
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
        plan = PlanResult.from_dict(feature.plan)
        info = await gh.get_repository()
        issue = await gh.get_issue(feature.issue_number)
        branch = feature.branch or branch_name(feature.issue_number, issue.title)
        context = await self._repository_context(toolbox, gh, feature, plan, info.default_branch)
        workspace = await toolbox.workspace(feature.installation_id, info.clone_url)
        async with workspace as ws:
            await ws.clone()
            exclude_leftovers(ws.path)
            base_sha = await ws.head()
            await ws.checkout_branch(branch, base=info.default_branch)
            sandbox = toolbox.sandbox_for(ws.path)
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
        stop = describe_stop(result.stop_reason)
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
        toolbox: Toolbox, gh: Any, feature: FeatureView, plan: PlanResult, default_branch: str
    ) -> str:
        """What stays fixed for the whole loop, so it sits in the cached prompt prefix: the
        repository's file tree, what the knowledge store finds for the plan, and the round's
        review feedback."""
        tree = await gh.get_tree(default_branch)
        parts = ["## Files\n" + render_file_tree([e.path for e in tree.entries if e.type == "blob"])]
        knowledge = await toolbox.context_for(feature.repository, f"{plan.title}\n{plan.for_coder()}")
        if knowledge:
            parts.append(knowledge)
        if feature.guidance:
            parts.append(
                "## Feedback to address in this round\n"
                + wrap_untrusted(feature.guidance, source="review feedback")
            )
        return "\n\n".join(parts)

    @staticmethod
    async def _push_if_changed(ws: Any, base_sha: str) -> str | None:
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
