"""The bounded tool-use loop every agent runs: step = execute(query()).

Each turn sends the conversation with the tool definitions, runs every `tool_use` block the model
returned through `tools.call`, and answers with `tool_result` blocks. The loop stops when
- a tool reports `finished=True` ("finished"),
- the model ends its turn without calling a tool twice in a row; the first time it is nudged
  ("end_turn"),
- a limit is reached: the loop's own `max_turns` or any limit of the task's `Budget`
  ("budget:<limit>"),
- the model call fails after the SDK's retries, or the model refuses ("error:<what>").

After every turn the whole trajectory (JSON-serialisable) is handed to `on_step`, so whoever runs
the loop can store it with the task and nothing is lost if the process dies mid-task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.budget import LIMIT_TURNS, Budget, BudgetExceeded, TokenUsage
from agents.llm import Block, LLMCall, LLMClient, LLMError, MessageParam, ToolUse
from agents.untrusted import reveal_invisible
from bot.contracts.stops import StopReason

logger = logging.getLogger(__name__)

DEFAULT_NUDGE = (
    "You ended your turn without calling a tool. This conversation is not read by a person: "
    "continue the task using the tools, and call the tool that finishes the task when you are done."
)
DEFAULT_MAX_RESULT_CHARS = 20_000
_NOT_RUN = "Not run: an earlier tool call in this turn finished the task."

OnStep = Callable[[list[dict[str, Any]]], Awaitable[None]]


class ToolResultLike(Protocol):
    @property
    def content(self) -> str: ...
    @property
    def is_error(self) -> bool: ...
    @property
    def finished(self) -> bool: ...


class Tools(Protocol):
    """What the loop needs from a tool set (agents.tools.CoderTools satisfies it)."""

    def definitions(self) -> list[dict[str, Any]]: ...

    async def call(self, name: str, tool_input: Mapping[str, Any]) -> ToolResultLike: ...


@dataclass(frozen=True)
class ToolOutput:
    """A tool result produced by the agents' own tools (plan submission, step commits)."""

    content: str
    is_error: bool = False
    finished: bool = False


def truncate_middle(text: str, limit: int) -> str:
    """Keep the head and the tail of `text` (errors and summaries tend to sit at either end)."""
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    dropped = len(text) - head - tail
    return f"{text[:head]}\n[... {dropped} characters truncated ...]\n{text[-tail:]}"


@dataclass(frozen=True)
class FinishedBy:
    name: str
    input: dict[str, Any]
    content: str


@dataclass
class LoopResult:
    stop_reason: StopReason
    detail: str
    messages: list[MessageParam]
    final_text: str
    finished_by: FinishedBy | None
    turns: int
    usage: TokenUsage
    cost_usd: float
    trajectory: list[dict[str, Any]] = field(repr=False)

    @property
    def finished(self) -> bool:
        return self.stop_reason.is_finished


@dataclass(frozen=True)
class Resumption:
    """Where an interrupted run stopped, rebuilt from the trajectory it checkpointed.

    Continuing from here re-sends the same conversation (so the prompt cache still serves it)
    instead of paying for every model call again. The old turns are kept in the new trajectory,
    marked `resumed`, so what they cost is not counted a second time.
    """

    system: list[Block] | str
    messages: list[MessageParam]
    trajectory: list[dict[str, Any]]
    turns: int
    tool_calls: list[dict[str, Any]]
    # How the run ended, when it had (its worker died after the loop, before the step was
    # recorded): there is nothing to continue then, only its effects to redo.
    stop: Mapping[str, Any] | None = None

    @classmethod
    def from_trajectory(
        cls, trajectory: Sequence[Mapping[str, Any]], *, tool_names: Sequence[str], nudge: str
    ) -> Resumption | None:
        """None when there is nothing to resume: no turn yet, or it used other tools (a
        different agent or version)."""
        if not trajectory or trajectory[0].get("type") != "start":
            return None
        if list(trajectory[0].get("tools") or []) != list(tool_names):
            return None
        turns = [step for step in trajectory if step.get("type") == "turn"]
        if not turns:
            return None
        stop = next((step for step in trajectory if step.get("type") == "stop"), None)
        messages: list[MessageParam] = []
        for turn in turns:
            messages += list(turn.get("new_messages") or [])
            messages.append({"role": "assistant", "content": list(turn["response"]["content"])})
        last = turns[-1]
        uses = [b for b in last["response"]["content"] if b.get("type") == "tool_use"]
        if stop is not None:
            pass  # ended: no answer is owed to the model
        elif uses:
            done = {call["id"]: call for call in last.get("tool_calls") or []}
            if any(use["id"] not in done for use in uses):
                return None  # checkpoints follow whole turns; this one is not
            results: list[Block] = []
            for use in uses:
                call = done[use["id"]]
                result: Block = {
                    "type": "tool_result",
                    "tool_use_id": use["id"],
                    "content": call["result"],
                }
                if call.get("is_error"):
                    result["is_error"] = True
                results.append(result)
            messages.append({"role": "user", "content": results})
        else:
            messages.append({"role": "user", "content": nudge})
        kept = [
            {**step, "resumed": True} if step.get("type") == "turn" else dict(step)
            for step in trajectory
            if step.get("type") != "stop"
        ]
        return cls(
            system=trajectory[0]["system"],
            messages=messages,
            trajectory=kept,
            turns=len(turns),
            tool_calls=[call for turn in turns for call in turn.get("tool_calls") or []],
            stop=stop,
        )


@dataclass
class ToolLoop:
    """Runs one conversation to a stop; holds only configuration, so one instance can be reused."""

    llm: LLMClient
    max_turns: int = 50
    max_tokens: int = 8192
    model: str | None = None
    max_result_chars: int = DEFAULT_MAX_RESULT_CHARS
    nudge: str = DEFAULT_NUDGE

    async def run(
        self,
        *,
        system: Sequence[Block] | str,
        messages: Sequence[MessageParam],
        tools: Tools,
        budget: Budget,
        on_step: OnStep | None = None,
        resume: Resumption | None = None,
    ) -> LoopResult:
        """Run to a stop; with `resume`, continue that interrupted run (its system prompt and
        conversation) instead of starting from `system` and `messages`."""
        if resume is None:
            run = _Run(self, system, list(messages), tools, budget, on_step)
        elif resume.stop is not None:
            raise ValueError("that run had ended; there is no conversation to continue")
        else:
            run = _Run(self, resume.system, list(resume.messages), tools, budget, on_step)
            run.resume_from(resume)
        return await run.execute()


class _Run:
    """The state of one loop run."""

    def __init__(
        self,
        loop: ToolLoop,
        system: Sequence[Block] | str,
        messages: list[MessageParam],
        tools: Tools,
        budget: Budget,
        on_step: OnStep | None,
    ) -> None:
        self.loop = loop
        self.system = system
        self.messages = messages
        self.tools = tools
        self.budget = budget
        self.on_step = on_step
        self.usage = TokenUsage()
        self.cost_usd = 0.0
        self.turns = 0
        self.sent = 0  # messages already shown in the trajectory
        self.final_text = ""
        self.tool_defs = tools.definitions()
        self.trajectory: list[dict[str, Any]] = [
            {
                "type": "start",
                "model": loop.model or loop.llm.model,
                "system": system if isinstance(system, str) else [dict(b) for b in system],
                "tools": [t.get("name") for t in self.tool_defs],
                "max_turns": loop.max_turns,
            }
        ]

    def resume_from(self, resume: Resumption) -> None:
        # The pending tool results (or nudge) are the only message not yet in the trajectory.
        self.sent = len(self.messages) - 1
        self.turns = resume.turns
        self.trajectory = [*resume.trajectory, {"type": "resume", "after_turns": resume.turns}]

    async def execute(self) -> LoopResult:
        stalled = False
        while True:
            if self.turns >= self.loop.max_turns:
                return await self._stop(
                    StopReason.budget(LIMIT_TURNS),
                    f"the loop's limit of {self.loop.max_turns} turns",
                )
            new_messages = self.messages[self.sent :]
            try:
                call = await self.loop.llm.create(
                    self.system,
                    self.messages,
                    self.tool_defs,
                    budget=self.budget,
                    max_tokens=self.loop.max_tokens,
                    model=self.loop.model,
                )
            except BudgetExceeded as exceeded:
                return await self._stop(StopReason.budget(exceeded.limit), exceeded.detail)
            except LLMError as error:
                return await self._stop(StopReason.error(str(error)), str(error))
            self._account(call)
            self.messages.append(call.as_message())
            self.sent = len(self.messages)
            step: dict[str, Any] = {
                "type": "turn",
                "turn": self.turns,
                "new_messages": new_messages,
                "response": call.to_dict(),
                "tool_calls": [],
                "elapsed_s": round(self.budget.elapsed_s, 3),
            }
            self.trajectory.append(step)
            if call.text:
                self.final_text = call.text
            uses = call.tool_uses
            if not uses:
                if call.stop_reason == "refusal":
                    return await self._stop(
                        StopReason.error("refusal"), "the model refused to continue"
                    )
                if stalled:
                    return await self._stop(
                        StopReason.end_turn(), "the model stopped without finishing"
                    )
                stalled = True
                self.messages.append({"role": "user", "content": self.loop.nudge})
                await self._emit()
                continue
            stalled = False
            finished = await self._run_tools(uses, step)
            await self._emit()
            if finished is not None:
                return await self._stop(StopReason.finished(), finished.content, finished)

    def _account(self, call: LLMCall) -> None:
        self.turns += 1
        self.usage = self.usage + call.usage
        self.cost_usd += call.cost_usd

    async def _run_tools(self, uses: list[ToolUse], step: dict[str, Any]) -> FinishedBy | None:
        results: list[Block] = []
        finished: FinishedBy | None = None
        for use in uses:
            if finished is not None:
                results.append({"type": "tool_result", "tool_use_id": use.id, "content": _NOT_RUN})
                continue
            started = time.monotonic()
            outcome = await self._call(use)
            # Repository files and command output may hide text in invisible characters; the
            # model sees each one marked (edit tools accept the marks back).
            content = (
                reveal_invisible(truncate_middle(outcome.content, self.loop.max_result_chars))
                or "(no output)"
            )
            result: Block = {"type": "tool_result", "tool_use_id": use.id, "content": content}
            if outcome.is_error:
                result["is_error"] = True
            results.append(result)
            step["tool_calls"].append(
                {
                    "id": use.id,
                    "name": use.name,
                    "input": use.input,
                    "result": content,
                    "is_error": outcome.is_error,
                    "finished": outcome.finished,
                    "duration_s": round(time.monotonic() - started, 3),
                }
            )
            if outcome.finished:
                finished = FinishedBy(name=use.name, input=use.input, content=outcome.content)
        self.messages.append({"role": "user", "content": results})
        return finished

    async def _call(self, use: ToolUse) -> ToolResultLike:
        try:
            return await self.tools.call(use.name, use.input)
        except Exception as error:  # a broken tool must not end the task: the model can adapt
            logger.warning("tool %s raised", use.name, exc_info=True)
            return ToolOutput(
                f"tool {use.name} failed: {type(error).__name__}: {error}", is_error=True
            )

    async def _emit(self) -> None:
        if self.on_step is not None:
            # A copy: the caller may store it later, after the loop has appended more steps.
            await self.on_step(list(self.trajectory))

    async def _stop(
        self, reason: StopReason, detail: str, finished_by: FinishedBy | None = None
    ) -> LoopResult:
        self.trajectory.append(
            {
                "type": "stop",
                "stop_reason": str(reason),
                "detail": detail,
                "turns": self.turns,
                "usage": self.usage.to_dict(),
                "cost_usd": round(self.cost_usd, 6),
                "unsent_messages": self.messages[self.sent :],
            }
        )
        await self._emit()
        return LoopResult(
            stop_reason=reason,
            detail=detail,
            messages=self.messages,
            final_text=self.final_text,
            finished_by=finished_by,
            turns=self.turns,
            usage=self.usage,
            cost_usd=self.cost_usd,
            trajectory=self.trajectory,
        )
