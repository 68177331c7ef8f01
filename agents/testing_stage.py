"""The testing stage: the validation gates, run again on a fresh clone of exactly what was pushed.

The coder runs the gates in its own working copy; this stage checks the branch as GitHub has it
(nothing left over from the coder's session, setup steps run from scratch), so the
`Agent Factory / tests` check run on the PR speaks for the pushed commit. Failing gates send the
run back to implementation for another round (bounded by `max_rounds`), with their output as the
feedback the coder must address. A setup step that fails is a problem of the environment, not of
the change, so it fails the run instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agents.checkout_setup import exclude_leftovers, run_setup
from agents.loop import truncate_middle
from agents.sandbox import CommandResult
from agents.stages import StepContext, StepResult
from agents.toolbox import GATE_ENV, repository_key
from agents.untrusted import sanitize
from bot.contracts.lifecycle import Outcome, Stage
from bot.github.errors import scrub

_OUTPUT_CHARS = 4_000


@dataclass
class TesterStage:
    __test__ = False  # a stage, not a pytest test class
    stage = Stage.TEST
    gate_timeout_s: float = 900

    async def run(self, ctx: StepContext) -> StepResult:
        feature, gh, config = ctx.feature, ctx.github, ctx.config
        if not feature.branch:
            return StepResult(Outcome.FAILED, "there is no pushed branch to test")
        gates = list(config.validation_gates)
        if not gates:
            return StepResult(
                Outcome.SUCCEEDED,
                "no validation gates are configured",
                details="List the commands that must pass under `validation_gates` in "
                "`.github/factory.yml`; this check runs them on every pushed head.",
            )
        info = await gh.get_repository()
        workspace = await ctx.tools.workspace(feature.installation_id, info.clone_url)
        async with workspace as ws:
            await ws.clone()
            exclude_leftovers(ws)
            head = await ws.checkout_branch(feature.branch)
            sandbox = ctx.tools.sandbox_for(ws.path, ws.git_dir, repository_key(feature))
            if config.setup:
                await ctx.progress("running the setup steps")
                failure = await run_setup(
                    sandbox, ws.path, config.setup, timeout_s=config.setup_timeout_s
                )
                if failure is not None:
                    summary = failure.summary.replace("the coder was not started", "no gate ran")
                    return StepResult(Outcome.FAILED, summary, details=failure.details)
            await ctx.progress("running the validation gates")
            results = [
                await sandbox.run(gate, cwd=ws.path, timeout_s=self.gate_timeout_s, env=GATE_ENV)
                for gate in gates
            ]
        failed = [r for r in results if not r.ok]
        report = gate_table(results, head)
        if not failed:
            return StepResult(
                Outcome.SUCCEEDED, f"{len(results)} validation gate(s) passed on {head[:7]}", report
            )
        feedback = failure_feedback(failed, head)
        await ctx.record(guidance=feedback)
        return StepResult(
            Outcome.CHANGES_REQUESTED,
            f"{len(failed)} of {len(results)} validation gate(s) failed on {head[:7]}",
            details=f"{report}\n\n{feedback}",
        )


def _verdict(result: CommandResult) -> str:
    if result.ok:
        return "✅ passed"
    return "⏱️ timed out" if result.timed_out else f"❌ exit {result.exit_code}"


def gate_table(results: Sequence[CommandResult], head: str) -> str:
    lines = [
        f"Validation gates on `{head[:12]}`, in a fresh clone:",
        "",
        "| Command | Result |",
        "| --- | --- |",
    ]
    for result in results:
        command = sanitize(result.command).replace("`", "'")
        lines.append(f"| `{command}` | {_verdict(result)} ({result.duration_s:.1f}s) |")
    return "\n".join(lines)


def failure_feedback(failed: Sequence[CommandResult], head: str) -> str:
    """What the next implementation round must fix: each failing gate with its output's end."""
    parts = [f"The validation gates failed on `{head[:12]}` (a fresh clone of the branch):"]
    for result in failed:
        output = (result.stdout + "\n" + result.stderr).strip()
        tail = scrub(sanitize(truncate_middle(output, _OUTPUT_CHARS))) or "(no output)"
        fence = "~~~~" if "```" in tail else "```"
        status = "timed out" if result.timed_out else f"exit code {result.exit_code}"
        parts.append(f"`{sanitize(result.command)}` ({status}):\n{fence}\n{tail}\n{fence}")
    return "\n\n".join(parts)
