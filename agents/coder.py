"""The coder: implements an approved plan in a git checkout, step by step, and proves it with gates.

It runs the shared tool loop with the coder's tools (`agents.tools.CoderTools`) plus one of its own,
`complete_step`, which commits the work of a finished plan step through the `commit` callback. When
the model calls `finish`, the repository's validation gates run for real in the sandbox; if one
fails, its output goes back to the model (up to `max_gate_retries` times) instead of finishing.

Whatever stops the run (finished, a budget limit, an error), the work done so far is committed
before `implement` returns, so the branch can always be pushed and nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.budget import Budget, TokenUsage
from agents.coding_tools import CodingTools, Commit, GateRunner, commit_message, gate_to_dict
from agents.llm import Block, LLMClient
from agents.loop import (
    OnStep,
    Resumption,
    ToolLoop,
    Tools,
    truncate_middle,
)
from agents.plan_files import plan_files_section
from agents.toolbox import GATE_ENV
from agents.untrusted import UNTRUSTED_DATA_RULE, sanitize, wrap_untrusted
from bot.contracts.prp import Plan
from bot.contracts.stops import StopKind, StopReason

logger = logging.getLogger(__name__)

Restore = Callable[[], Awaitable[None]]

# The tools whose effects on the checkout a resumed try re-applies (read-only tools need nothing;
# commands are not re-run: their output is in the conversation already).
REPLAYED_TOOLS = frozenset({"create_file", "edit_file", "complete_step"})

_MAX_REPO_CONTEXT_CHARS = 120_000

SYSTEM_PROMPT = f"""\
You are the coding agent of Agent Factory, a bot that implements GitHub issues as pull requests.
You work in a git checkout of the repository through the tools, following an approved plan.

How to work:
- Follow the plan's steps in order. Read the code you change first; keep changes minimal, in the
  repository's style, and add or update tests for behaviour you change.
- After each plan step, call complete_step with the step number and a one-line commit message;
  it commits your changes.
- Run the validation gates with run_command and fix what fails before finishing.
- When the work is done and the gates pass, call finish with a summary of what changed and how
  you verified it. finish runs the gates again; if one fails you get its output and must fix it.
- If the plan cannot be carried out, call finish and explain why.
- Commands run in a sandbox without network access. Do not change CI configuration or anything
  outside the repository, and do not look for credentials.

{UNTRUSTED_DATA_RULE}"""


@dataclass
class CoderResult:
    finished: bool
    stop_reason: StopReason
    summary: str
    gate_results: list[Any]
    commits: list[str]
    trajectory: list[dict[str, Any]] = field(repr=False)
    usage: TokenUsage
    cost_usd: float
    turns: int

    @property
    def gates_passed(self) -> bool:
        return all(g.ok for g in self.gate_results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "finished": self.finished,
            "stop_reason": str(self.stop_reason),
            "summary": self.summary,
            "gate_results": [gate_to_dict(g) for g in self.gate_results],
            "commits": list(self.commits),
            "usage": self.usage.to_dict(),
            "cost_usd": round(self.cost_usd, 6),
            "turns": self.turns,
        }


def final_stop_reason(loop_reason: StopReason, gate_results: Sequence[Any]) -> StopReason:
    """How the coder ended, from how its loop stopped: finishing with failing gates is an error,
    and so is a model that stopped without calling finish."""
    if loop_reason.kind is StopKind.FINISHED:
        failed = [g.command for g in gate_results if not g.ok]
        if failed:
            return StopReason.error(f"validation gates failed: {', '.join(failed)}")
        return loop_reason
    if loop_reason.kind is StopKind.END_TURN:
        return StopReason.error("end_turn: the model stopped without calling finish")
    return loop_reason


@dataclass
class Coder:
    llm: LLMClient
    max_turns: int = 60
    max_tokens: int = 8192
    model: str | None = None
    max_gate_retries: int = 2
    gate_timeout_s: float = 900
    max_result_chars: int = 20_000
    preload_plan_files: bool = True

    async def implement(
        self,
        *,
        workdir: Path,
        plan: Plan,
        tools: Tools,
        gates: Sequence[str],
        sandbox: GateRunner,
        budget: Budget,
        commit: Commit,
        on_step: OnStep | None = None,
        repo_context: str = "",
        gate_env: Mapping[str, str] | None = None,
        resume_from: Sequence[Mapping[str, Any]] | None = None,
        restore: Restore | None = None,
    ) -> CoderResult:
        """Carry out `plan` in `workdir`; the result says how it stopped and what was committed.

        `resume_from` is the checkpointed trajectory of a try that died (a killed worker): its
        file changes and step commits are replayed on the fresh checkout, and the conversation
        continues where it stopped, so its model calls are not paid for again. If a change no
        longer applies, `restore` puts the checkout back and the work starts over. Effects of
        commands the model ran are not replayed; the gates still run before finishing.
        """
        coding_tools = CodingTools(
            tools,
            commit=commit,
            plan=plan,
            gates=gates,
            sandbox=sandbox,
            workdir=workdir,
            gate_timeout_s=self.gate_timeout_s,
            gate_env={**GATE_ENV, **(gate_env or {})},
            max_gate_retries=self.max_gate_retries,
        )
        loop = ToolLoop(
            self.llm,
            max_turns=self.max_turns,
            max_tokens=self.max_tokens,
            model=self.model,
            max_result_chars=self.max_result_chars,
        )
        resumption = None
        if resume_from and restore is not None:
            resumption = await self._replay(coding_tools, resume_from, loop.nudge, restore)
            if resumption is not None and resumption.stop is not None:
                ended = await self._end_as_before(coding_tools, plan, resumption, restore)
                if ended is not None:
                    return ended
                resumption = None
        try:
            outcome = await loop.run(
                system=self.system_blocks(
                    repo_context, plan, gates, plan_files=self._plan_files(plan, workdir)
                ),
                messages=[{"role": "user", "content": self.task_text(plan)}],
                tools=coding_tools,
                budget=budget,
                on_step=on_step,
                resume=resumption,
            )
        except (Exception, asyncio.CancelledError):
            # Unexpected failure (or cancellation): keep the work, then let it propagate.
            await self._save_work(coding_tools, plan, "error: the coder crashed")
            raise
        stop_reason = final_stop_reason(outcome.stop_reason, coding_tools.gate_results)
        if outcome.finished:
            summary = coding_tools.summary or outcome.final_text
        else:
            await self._save_work(coding_tools, plan, f"{stop_reason} ({outcome.detail})")
            summary = outcome.final_text or outcome.detail
        return CoderResult(
            finished=stop_reason.is_finished,
            stop_reason=stop_reason,
            summary=summary,
            gate_results=coding_tools.gate_results,
            commits=coding_tools.commits,
            trajectory=outcome.trajectory,
            usage=outcome.usage,
            cost_usd=outcome.cost_usd,
            turns=outcome.turns,
        )

    @staticmethod
    async def _replay(
        tools: CodingTools,
        trajectory: Sequence[Mapping[str, Any]],
        nudge: str,
        restore: Restore,
    ) -> Resumption | None:
        """Re-apply an interrupted try's file changes and commits; None: start over instead."""
        names = [d["name"] for d in tools.definitions()]
        resumption = Resumption.from_trajectory(trajectory, tool_names=names, nudge=nudge)
        if resumption is None:
            return None
        replayed = 0
        for call in resumption.tool_calls:
            if call["name"] not in REPLAYED_TOOLS or call.get("is_error"):
                continue
            result = await tools.call(call["name"], call["input"])
            if result.is_error:
                logger.warning(
                    "cannot resume: replaying %s failed (%s); starting over",
                    call["name"],
                    result.content[:200],
                )
                await restore()
                tools.commits.clear()
                return None
            replayed += 1
        logger.info(
            "resuming the coder after turn %d (%d changes replayed)", resumption.turns, replayed
        )
        return resumption

    async def _end_as_before(
        self, tools: CodingTools, plan: Plan, resumption: Resumption, restore: Restore
    ) -> CoderResult | None:
        """The try's loop had ended, and only its worker's death kept the stage from pushing:
        with its changes replayed, end it the same way (gates, final commit) without asking the
        model anything. None if the gates no longer pass: then the work starts over."""
        stop = resumption.stop or {}
        stop_reason = StopReason.parse(str(stop.get("stop_reason") or "error:unknown"))
        summary = str(stop.get("detail") or "")
        finish = next((c for c in reversed(resumption.tool_calls) if c.get("finished")), None)
        if stop_reason.is_finished and finish is not None:
            ended = await tools.call(finish["name"], finish["input"])
            if not ended.finished:
                await restore()
                tools.commits.clear()
                return None
            stop_reason = final_stop_reason(stop_reason, tools.gate_results)
            summary = tools.summary or summary
        else:
            stop_reason = final_stop_reason(stop_reason, tools.gate_results)
            await self._save_work(tools, plan, f"{stop_reason} ({summary})")
        logger.info("the coder's last try had ended (%s); its work was redone", stop_reason)
        return CoderResult(
            finished=stop_reason.is_finished,
            stop_reason=stop_reason,
            summary=summary,
            gate_results=tools.gate_results,
            commits=tools.commits,
            trajectory=[
                *resumption.trajectory,
                {"type": "resume", "after_turns": resumption.turns},
                {**stop, "redone": True},
            ],
            usage=TokenUsage(),
            cost_usd=0.0,
            turns=resumption.turns,
        )

    async def _save_work(self, tools: CodingTools, plan: Plan, why: str) -> None:
        message = commit_message(
            f"WIP: unfinished work on #{plan.issue_number}",
            f"Saved by Agent Factory when the coder stopped: {why}",
            issue_number=plan.issue_number,
        )
        await tools.commit(message)

    def _plan_files(self, plan: Plan, workdir: Path) -> str:
        if not self.preload_plan_files:
            return ""
        return plan_files_section(plan, workdir)

    def system_blocks(
        self,
        repo_context: str,
        plan: Plan,
        gates: Sequence[str],
        *,
        plan_files: str = "",
    ) -> list[Block]:
        """Everything fixed for the whole loop, so every turn re-sends it byte for byte and it is
        read from the prompt cache: instructions, the repository context, then the plan with its
        gates and the files it names (the last block: the cache marker goes there)."""
        context = repo_context.strip()
        if len(context) > _MAX_REPO_CONTEXT_CHARS:
            context = truncate_middle(context, _MAX_REPO_CONTEXT_CHARS)
        repository = "# Repository context\n\n" + (
            wrap_untrusted(context, source="repository context") if context else "(none given)"
        )
        # The gates are the repository's configuration: shown exactly, as data.
        gate_lines = wrap_untrusted(
            "\n".join(f"- {g}" for g in gates) or "- (none configured)",
            source=".github/factory.yml validation_gates",
            verbatim=True,
        )
        work = (
            f"# The approved plan for issue #{plan.issue_number}\n\n"
            f"{sanitize(plan.for_coder()).strip()}\n\n"
            f"## Validation gates that must pass before finish\n{gate_lines}"
        )
        if plan_files:
            work += "\n\n" + plan_files
        return [
            {"type": "text", "text": SYSTEM_PROMPT},
            {"type": "text", "text": repository},
            {"type": "text", "text": work},
        ]

    @staticmethod
    def task_text(plan: Plan) -> str:
        return (
            f"Implement the approved plan for issue #{plan.issue_number}, shown above with its "
            "validation gates. Start with step 1."
        )
