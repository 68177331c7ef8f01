"""The coder's own tools on top of the repository tools: `complete_step` commits a plan step,
and `finish` only finishes once the validation gates pass (or their retries are used up)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from agents.loop import ToolOutput, ToolResultLike, Tools, truncate_middle
from agents.untrusted import sanitize
from bot.contracts.prp import Plan

Commit = Callable[[str], Awaitable[str | None]]

_SUBJECT_CHARS = 72
_GATE_OUTPUT_CHARS = 6_000

COMPLETE_STEP_TOOL: Mapping[str, Any] = {
    "name": "complete_step",
    "description": (
        "Call after finishing one step of the plan: commits the current changes with your "
        "message. Use the imperative mood, e.g. 'Parse dates in the CSV importer'."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "step": {"type": "integer", "minimum": 1, "description": "The plan step's number."},
            "message": {"type": "string", "description": "One-line commit message."},
        },
        "required": ["step", "message"],
        "additionalProperties": False,
    },
}


class CommandResultLike(Protocol):
    """What agents.sandbox.CommandResult offers."""

    @property
    def command(self) -> str: ...
    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...
    @property
    def timed_out(self) -> bool: ...
    @property
    def ok(self) -> bool: ...


class GateRunner(Protocol):
    """What the coder needs from agents.sandbox.Sandbox."""

    async def run(
        self,
        command: str,
        *,
        cwd: Path,
        timeout_s: float = 300,
        env: Mapping[str, str] | None = None,
    ) -> Any: ...


def gate_to_dict(result: Any) -> dict[str, Any]:
    return {
        "command": result.command,
        "exit_code": result.exit_code,
        "ok": result.ok,
        "timed_out": result.timed_out,
        "duration_s": round(float(getattr(result, "duration_s", 0.0)), 3),
    }


def gate_report(results: Sequence[Any]) -> str:
    """The failing gates' output, as the model gets it."""
    sections = []
    for result in results:
        if result.ok:
            sections.append(f"PASSED: {result.command}")
            continue
        status = "timed out" if result.timed_out else f"exit code {result.exit_code}"
        output = truncate_middle((result.stdout + "\n" + result.stderr).strip(), _GATE_OUTPUT_CHARS)
        sections.append(f"FAILED ({status}): {result.command}\n{output}")
    return "\n\n".join(sections)


def commit_message(subject: str, body: str = "", *, issue_number: int | None = None) -> str:
    """A conventional commit message: one short subject line, then the body and a reference."""
    lines = [line.strip() for line in sanitize(subject).strip().splitlines() if line.strip()]
    first = lines[0] if lines else "Update"
    if len(first) > _SUBJECT_CHARS:
        first = first[: _SUBJECT_CHARS - 3].rstrip() + "..."
    rest = "\n".join([*lines[1:], sanitize(body).strip()]).strip()
    trailer = f"Part of #{issue_number}" if issue_number else ""
    return "\n\n".join(part for part in (first, rest, trailer) if part)


class CodingTools:
    """The coder's tools, with step commits and gated finishing layered on top."""

    def __init__(
        self,
        inner: Tools,
        *,
        commit: Commit,
        plan: Plan,
        gates: Sequence[str],
        sandbox: GateRunner,
        workdir: Path,
        gate_timeout_s: float,
        gate_env: Mapping[str, str] | None,
        max_gate_retries: int,
    ) -> None:
        self._inner = inner
        self._commit = commit
        self._plan = plan
        self._gates = list(gates)
        self._sandbox = sandbox
        self._workdir = workdir
        self._gate_timeout_s = gate_timeout_s
        self._gate_env = gate_env
        self._max_gate_retries = max_gate_retries
        self._definitions = [*inner.definitions(), dict(COMPLETE_STEP_TOOL)]
        self.gate_failures = 0
        self.gate_results: list[Any] = []
        self.commits: list[str] = []
        self.summary = ""

    def definitions(self) -> list[dict[str, Any]]:
        return list(self._definitions)

    async def commit(self, message: str) -> str | None:
        sha = await self._commit(message)
        if sha:
            self.commits.append(sha)
        return sha

    async def call(self, name: str, tool_input: Mapping[str, Any]) -> ToolResultLike:
        if name == COMPLETE_STEP_TOOL["name"]:
            return await self._complete_step(tool_input)
        result = await self._inner.call(name, tool_input)
        if not result.finished:
            return result
        return await self._finish(result, tool_input)

    async def _complete_step(self, tool_input: Mapping[str, Any]) -> ToolResultLike:
        step = tool_input.get("step")
        message = str(tool_input.get("message") or "").strip()
        if not message:
            return ToolOutput("complete_step needs a commit message.", is_error=True)
        title = ""
        if isinstance(step, int) and 1 <= step <= len(self._plan.steps):
            title = f"Plan step {step}: {self._plan.steps[step - 1].title}"
        sha = await self.commit(
            commit_message(message, title, issue_number=self._plan.issue_number)
        )
        if sha is None:
            return ToolOutput("Nothing to commit: no file changed since the last commit.")
        return ToolOutput(f"Committed {sha[:12]}: {message}")

    async def run_gates(self) -> list[Any]:
        results = []
        for gate in self._gates:
            results.append(
                await self._sandbox.run(
                    gate, cwd=self._workdir, timeout_s=self._gate_timeout_s, env=self._gate_env
                )
            )
        self.gate_results = results
        return results

    async def _finish(
        self, result: ToolResultLike, tool_input: Mapping[str, Any]
    ) -> ToolResultLike:
        self.summary = str(tool_input.get("summary") or result.content).strip()
        results = await self.run_gates()
        if not all(r.ok for r in results) and self.gate_failures < self._max_gate_retries:
            self.gate_failures += 1
            return ToolOutput(
                "Not finished: the validation gates must pass first. Fix the failures below, "
                "then call finish again.\n\n" + gate_report(results),
                is_error=True,
            )
        subject = (
            self.summary.splitlines()[0]
            if self.summary
            else f"Implement #{self._plan.issue_number}"
        )
        await self.commit(
            commit_message(subject, self.summary, issue_number=self._plan.issue_number)
        )
        return ToolOutput(f"{result.content}\n\n{gate_report(results)}".strip(), finished=True)
