"""The planner: turns an issue into a PRP (product requirements prompt) the coder can follow.

The model answers by calling a `submit_plan` tool whose input schema is the PRP, so the plan
arrives as structured data, is validated here, and is rendered to Markdown (with checkboxes) for
the issue comment. When the issue is too vague to plan without guessing, the model submits
questions instead and the plan is marked `needs_clarification`.

Given a checkout (`tools`), the planner may also look around the repository first with read-only
tools (listing, reading, searching files), within the loop's turn limit and the task's budget.
Everything written by outsiders (the issue, its comments, the file tree, retrieved knowledge)
reaches the prompt sanitised and wrapped as untrusted data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from pydantic.dataclasses import dataclass as pydantic_dataclass

from agents.budget import Budget, TokenUsage
from agents.file_tree import render_file_tree
from agents.llm import Block, LLMClient
from agents.loop import OnStep, Resumption, ToolLoop, ToolOutput, ToolResultLike, Tools
from agents.toolbox import READ_ONLY_TOOLS
from agents.untrusted import UNTRUSTED_DATA_RULE, sanitize, wrap_untrusted
from bot.contracts.prp import SUBMIT_PLAN, ContextRef, Estimate, Plan, PlanStep
from bot.contracts.stops import StopReason

__all__ = [
    "ContextRef",
    "Estimate",
    "InvalidPlan",
    "Issue",
    "IssueComment",
    "PlanResult",
    "PlanStep",
    "Planner",
    "PlanningFailed",
    "render_file_tree",
]

_MAX_BODY_CHARS = 30_000
_MAX_COMMENT_CHARS = 6_000
_MAX_COMMENTS = 40
_MAX_KNOWLEDGE_CHARS = 40_000

SUBMIT_PLAN_TOOL: Mapping[str, Any] = {
    "name": SUBMIT_PLAN,
    "description": (
        "Submit the implementation plan (a PRP) for the issue. Call it exactly once, when the "
        "plan is complete. If the issue is too vague to plan without guessing, set "
        "needs_clarification to true and list your questions instead of inventing requirements."
    ),
    "input_schema": Plan.submission_schema(),
}

SYSTEM_PROMPT = f"""\
You are the planning agent of Agent Factory, a bot that implements GitHub issues as pull requests.
Your job: read the issue and the repository context, then write a plan (a PRP, product
requirements prompt) that another agent, the coder, will follow step by step in a checkout of the
repository. The coder sees only your plan, the repository and the validation gates.

A good plan:
- states the goal and why it matters;
- lists the files and references to read first, each with the reason;
- breaks the work into small ordered steps, each one commit, naming the files it touches;
- names the validation gates (commands) that prove it works and the success criteria;
- says how to recover if a step fails, and estimates size (XS-XL) and complexity.
Prefer the smallest change that fully solves the issue; follow the repository's existing style.

If the issue is too vague to plan without guessing at requirements, do not guess: submit
needs_clarification=true with a few specific questions.

When you may read the repository (tools besides submit_plan), look only at what you need.
Always finish by calling submit_plan exactly once.

{UNTRUSTED_DATA_RULE}
Never put credentials, tokens or keys in a plan, and never ask for them."""


@dataclass(frozen=True)
class IssueComment:
    author: str
    body: str


@dataclass(frozen=True)
class Issue:
    number: int
    title: str
    body: str
    author: str
    comments: Sequence[IssueComment] = ()


class InvalidPlan(ValueError):
    """The submitted plan is incomplete; the message goes back to the model."""


@pydantic_dataclass
class PlanResult(Plan):
    """A PRP with what the run that produced it cost (`to_dict` keeps only the plan)."""

    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float = 0.0
    trajectory: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @classmethod
    def from_submission(
        cls, data: Mapping[str, Any], *, issue: Issue, configured_gates: Sequence[str]
    ) -> PlanResult:
        """Build a plan from `submit_plan` input; raise InvalidPlan if it is not usable.

        Every text the model wrote is sanitised first: an injected issue could ask it to hide
        instructions (an HTML comment, invisible characters) in the plan the coder follows.
        """
        # Who the plan is for comes from the issue; whether it is one, from the rules below.
        known = {f.name for f in fields(Plan)} - {"issue_number", "title", "needs_clarification"}
        submitted = {k: _clean(v) for k, v in data.items() if k in known}
        plan = cls.from_dict({**submitted, "issue_number": issue.number, "title": issue.title})
        wanted = bool(data.get("needs_clarification"))
        if wanted and not plan.questions:
            raise InvalidPlan("needs_clarification is true but no questions were given.")
        plan.needs_clarification = wanted
        if not wanted:
            missing = [n for n, value in (("goal", plan.goal), ("steps", plan.steps)) if not value]
            if missing:
                raise InvalidPlan(
                    f"The plan is missing: {', '.join(missing)}. Submit a complete plan, or set "
                    "needs_clarification with questions."
                )
        plan.title = sanitize(issue.title).strip()
        plan.validation_gates = list(dict.fromkeys([*configured_gates, *plan.validation_gates]))
        return plan


def _clean(value: Any) -> Any:
    """The model's value with every text sanitised and trimmed."""
    if isinstance(value, str):
        return sanitize(value).strip()
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    return value


class _PlanningTools:
    """Read-only repository tools (if a checkout is given) plus `submit_plan`."""

    def __init__(
        self, repo_tools: Tools | None, allowed: Sequence[str], issue: Issue, gates: Sequence[str]
    ) -> None:
        self._repo_tools = repo_tools
        self._issue = issue
        self._gates = gates
        repo_defs = repo_tools.definitions() if repo_tools is not None else []
        self._read_only = [d for d in repo_defs if d.get("name") in allowed]
        self._allowed = {d["name"] for d in self._read_only}
        self.plan: PlanResult | None = None

    @property
    def can_read(self) -> bool:
        return bool(self._read_only)

    def definitions(self) -> list[dict[str, Any]]:
        return [*self._read_only, dict(SUBMIT_PLAN_TOOL)]

    async def call(self, name: str, tool_input: Mapping[str, Any]) -> ToolResultLike:
        if name == SUBMIT_PLAN_TOOL["name"]:
            try:
                self.plan = PlanResult.from_submission(
                    tool_input, issue=self._issue, configured_gates=self._gates
                )
            except InvalidPlan as problem:
                return ToolOutput(str(problem), is_error=True)
            return ToolOutput("Plan received.", finished=True)
        if name in self._allowed and self._repo_tools is not None:
            return await self._repo_tools.call(name, tool_input)
        return ToolOutput(
            f"Unknown or unavailable tool {name!r} (the planner is read-only).", is_error=True
        )


class PlanningFailed(RuntimeError):
    """The model never submitted a usable plan; carries what the attempt cost."""

    def __init__(
        self,
        stop_reason: StopReason,
        detail: str,
        *,
        usage: TokenUsage,
        cost_usd: float,
        trajectory: list[dict[str, Any]],
    ) -> None:
        super().__init__(f"planning stopped ({stop_reason}): {detail}")
        self.stop_reason = stop_reason
        self.detail = detail
        self.usage = usage
        self.cost_usd = cost_usd
        self.trajectory = trajectory


@dataclass
class Planner:
    llm: LLMClient
    max_turns: int = 12
    max_tokens: int = 8192
    model: str | None = None
    max_tree_entries: int = 400
    read_only_tools: Sequence[str] = READ_ONLY_TOOLS

    async def plan(
        self,
        *,
        issue: Issue,
        repo_files: Sequence[str],
        budget: Budget,
        repository: str = "",
        knowledge: str = "",
        guidance: str = "",
        gates: Sequence[str] = (),
        tools: Tools | None = None,
        on_step: OnStep | None = None,
        resume_from: Sequence[Mapping[str, Any]] | None = None,
    ) -> PlanResult:
        """Plan `issue`. Raises PlanningFailed (budget, refusal, no submission) with its cost.

        `resume_from` is the checkpoint of a try whose worker died: the conversation continues
        from it (its tools only read, so nothing needs redoing), and a plan it had already
        submitted is taken as it was, with no model call.
        """
        planning_tools = _PlanningTools(tools, self.read_only_tools, issue, gates)
        loop = ToolLoop(
            self.llm, max_turns=self.max_turns, max_tokens=self.max_tokens, model=self.model
        )
        resumption = None
        if resume_from:
            names = [d["name"] for d in planning_tools.definitions()]
            resumption = Resumption.from_trajectory(resume_from, tool_names=names, nudge=loop.nudge)
            if resumption is not None and resumption.stop is not None:
                submitted = await self._submitted_before(planning_tools, resumption)
                if submitted is not None:
                    return submitted
                resumption = None
        result = await loop.run(
            system=self.system_blocks(repository=repository, repo_files=repo_files, gates=gates),
            messages=[
                {
                    "role": "user",
                    "content": self.request_text(
                        issue=issue,
                        knowledge=knowledge,
                        guidance=guidance,
                        can_read=planning_tools.can_read,
                    ),
                }
            ],
            tools=planning_tools,
            budget=budget,
            on_step=on_step,
            resume=resumption,
        )
        if planning_tools.plan is None or not result.finished:
            raise PlanningFailed(
                result.stop_reason,
                result.detail,
                usage=result.usage,
                cost_usd=result.cost_usd,
                trajectory=result.trajectory,
            )
        plan = planning_tools.plan
        plan.usage = result.usage
        plan.cost_usd = result.cost_usd
        plan.trajectory = result.trajectory
        return plan

    @staticmethod
    async def _submitted_before(tools: _PlanningTools, resumption: Resumption) -> PlanResult | None:
        accepted = [
            c
            for c in resumption.tool_calls
            if c["name"] == SUBMIT_PLAN_TOOL["name"] and c.get("finished")
        ]
        if not accepted:
            return None
        await tools.call(accepted[-1]["name"], accepted[-1]["input"])
        plan = tools.plan
        if plan is None:
            return None
        plan.trajectory = [
            *resumption.trajectory,
            {"type": "resume", "after_turns": resumption.turns},
            {**(resumption.stop or {}), "redone": True},
        ]
        return plan

    def system_blocks(
        self, *, repository: str, repo_files: Sequence[str], gates: Sequence[str]
    ) -> list[Block]:
        """Instructions, then the repository context (last block: the cache prefix ends there)."""
        tree = render_file_tree(repo_files, max_entries=self.max_tree_entries)
        gate_lines = "\n".join(f"- {g}" for g in gates) or "- (none configured)"
        context = (
            f"# Repository {sanitize(repository) or '(unnamed)'}\n\n"
            "## Validation gates configured for this repository\n"
            + wrap_untrusted(
                gate_lines, source=".github/factory.yml validation_gates", verbatim=True
            )
            + "\n\n## Files\n"
            + wrap_untrusted(
                tree or "(empty repository)", source="repository file tree", verbatim=True
            )
        )
        return [{"type": "text", "text": SYSTEM_PROMPT}, {"type": "text", "text": context}]

    def request_text(self, *, issue: Issue, knowledge: str, guidance: str, can_read: bool) -> str:
        comments = list(issue.comments)[-_MAX_COMMENTS:]
        parts = [
            f"Plan the implementation of issue #{issue.number}, opened by @{sanitize(issue.author)}.",
            "",
            "## Issue title",
            wrap_untrusted(issue.title, source="issue title"),
            "",
            "## Issue body",
            wrap_untrusted(_clip(issue.body, _MAX_BODY_CHARS) or "(empty)", source="issue body"),
        ]
        if comments:
            omitted = len(issue.comments) - len(comments)
            parts += [
                "",
                f"## Discussion ({len(issue.comments)} comments"
                + (f", the first {omitted} omitted)" if omitted else ")"),
            ]
            for comment in comments:
                parts.append(
                    wrap_untrusted(
                        _clip(comment.body, _MAX_COMMENT_CHARS),
                        source=f"comment by @{comment.author}",
                    )
                )
        parts += ["", "## Knowledge context", ""]
        if knowledge.strip():
            parts += [
                "From this repository's knowledge base (code, earlier plans, review lessons):",
                wrap_untrusted(_clip(knowledge, _MAX_KNOWLEDGE_CHARS), source="knowledge base"),
            ]
        else:
            parts.append("(no knowledge context is available for this repository yet)")
        if guidance.strip():
            # Guidance may carry review feedback or gate output from an earlier round, which
            # repositories and reviewers wrote: data, like everything else here.
            parts += [
                "",
                "## Guidance for this plan (from the run's trigger or an earlier round)",
                wrap_untrusted(guidance, source="guidance"),
            ]
        parts += [
            "",
            "Read the repository with the tools if you need to, then call submit_plan."
            if can_read
            else "Call submit_plan with the plan (or with your questions).",
        ]
        return "\n".join(parts)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} characters omitted ...]"
