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

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.budget import Budget, TokenUsage
from agents.llm import Block, LLMClient
from agents.loop import OnStep, Resumption, ToolLoop, ToolOutput, ToolResultLike, Tools
from agents.untrusted import UNTRUSTED_DATA_RULE, sanitize, wrap_untrusted

READ_ONLY_TOOLS: tuple[str, ...] = ("list_files", "read_file", "search", "find_symbol")
SIZES: tuple[str, ...] = ("XS", "S", "M", "L", "XL")
COMPLEXITIES: tuple[str, ...] = ("low", "medium", "high")

_MAX_BODY_CHARS = 30_000
_MAX_COMMENT_CHARS = 6_000
_MAX_COMMENTS = 40
_MAX_KNOWLEDGE_CHARS = 40_000

SUBMIT_PLAN_TOOL: Mapping[str, Any] = {
    "name": "submit_plan",
    "description": (
        "Submit the implementation plan (a PRP) for the issue. Call it exactly once, when the "
        "plan is complete. If the issue is too vague to plan without guessing, set "
        "needs_clarification to true and list your questions instead of inventing requirements."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "needs_clarification": {
                "type": "boolean",
                "description": "True if questions must be answered before a plan is possible.",
            },
            "questions": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Specific questions for the author, if clarification is needed.",
            },
            "goal": {
                "type": "string",
                "description": "What the change achieves, in one or two sentences.",
            },
            "why": {"type": "string", "description": "The user value or problem it solves."},
            "context": {
                "type": "array",
                "description": "Files, docs and references the implementer must read.",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "File path or URL."},
                        "reason": {
                            "type": "string",
                            "description": "Why it matters for this change.",
                        },
                    },
                    "required": ["path", "reason"],
                },
            },
            "steps": {
                "type": "array",
                "description": "Implementation steps in order; each small enough for one commit.",
                "items": {
                    "type": "object",
                    "properties": {
                        "title": {"type": "string"},
                        "details": {"type": "string"},
                        "files": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["title", "details"],
                },
            },
            "validation_gates": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Commands that must pass (tests, linters) besides configured ones.",
            },
            "success_criteria": {"type": "array", "items": {"type": "string"}},
            "failure_recovery": {
                "type": "array",
                "items": {"type": "string"},
                "description": "What to do if a step or gate fails; known risks.",
            },
            "estimate": {
                "type": "object",
                "properties": {
                    "size": {"type": "string", "enum": list(SIZES)},
                    "complexity": {"type": "string", "enum": list(COMPLEXITIES)},
                    "rationale": {"type": "string"},
                },
                "required": ["size", "complexity"],
            },
        },
        "required": ["needs_clarification", "goal"],
    },
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


@dataclass(frozen=True)
class ContextRef:
    path: str
    reason: str


@dataclass(frozen=True)
class PlanStep:
    title: str
    details: str
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class Estimate:
    size: str = "M"
    complexity: str = "medium"
    rationale: str = ""


class InvalidPlan(ValueError):
    """The submitted plan is incomplete; the message goes back to the model."""


@dataclass
class PlanResult:
    """A PRP. `usage`, `cost_usd` and `trajectory` describe the run that produced it."""

    issue_number: int
    title: str
    goal: str
    why: str = ""
    context: list[ContextRef] = field(default_factory=list)
    steps: list[PlanStep] = field(default_factory=list)
    validation_gates: list[str] = field(default_factory=list)
    success_criteria: list[str] = field(default_factory=list)
    failure_recovery: list[str] = field(default_factory=list)
    estimate: Estimate = field(default_factory=Estimate)
    questions: list[str] = field(default_factory=list)
    needs_clarification: bool = False
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float = 0.0
    trajectory: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @classmethod
    def from_submission(
        cls, data: Mapping[str, Any], *, issue: Issue, configured_gates: Sequence[str]
    ) -> PlanResult:
        """Build a plan from `submit_plan` input; raise InvalidPlan if it is not usable."""
        questions = _strings(data.get("questions"))
        needs_clarification = bool(data.get("needs_clarification")) and bool(questions)
        if data.get("needs_clarification") and not questions:
            raise InvalidPlan("needs_clarification is true but no questions were given.")
        goal = _text(data.get("goal"))
        steps = [
            PlanStep(
                title=_text(s.get("title")),
                details=_text(s.get("details")),
                files=tuple(_strings(s.get("files"))),
            )
            for s in data.get("steps") or []
            if isinstance(s, Mapping) and _text(s.get("title"))
        ]
        if not needs_clarification:
            missing = [name for name, value in (("goal", goal), ("steps", steps)) if not value]
            if missing:
                raise InvalidPlan(
                    f"The plan is missing: {', '.join(missing)}. Submit a complete plan, or set "
                    "needs_clarification with questions."
                )
        raw = data.get("estimate")
        raw_estimate: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        size = _text(raw_estimate.get("size")).upper()
        complexity = _text(raw_estimate.get("complexity")).lower()
        estimate = Estimate(
            size=size if size in SIZES else "M",
            complexity=complexity if complexity in COMPLEXITIES else "medium",
            rationale=_text(raw_estimate.get("rationale")),
        )
        gates = list(dict.fromkeys([*configured_gates, *_strings(data.get("validation_gates"))]))
        return cls(
            issue_number=issue.number,
            title=sanitize(issue.title).strip(),
            goal=goal,
            why=_text(data.get("why")),
            context=[
                ContextRef(path=_text(c.get("path")), reason=_text(c.get("reason")))
                for c in data.get("context") or []
                if isinstance(c, Mapping) and _text(c.get("path"))
            ],
            steps=steps,
            validation_gates=gates,
            success_criteria=_strings(data.get("success_criteria")),
            failure_recovery=_strings(data.get("failure_recovery")),
            estimate=estimate,
            questions=questions,
            needs_clarification=needs_clarification,
        )

    def to_dict(self) -> dict[str, Any]:
        """The plan itself (no run data), e.g. for `Feature.plan`; `from_dict` reverses it."""
        return {
            "issue_number": self.issue_number,
            "title": self.title,
            "goal": self.goal,
            "why": self.why,
            "context": [{"path": c.path, "reason": c.reason} for c in self.context],
            "steps": [
                {"title": s.title, "details": s.details, "files": list(s.files)} for s in self.steps
            ],
            "validation_gates": list(self.validation_gates),
            "success_criteria": list(self.success_criteria),
            "failure_recovery": list(self.failure_recovery),
            "estimate": {
                "size": self.estimate.size,
                "complexity": self.estimate.complexity,
                "rationale": self.estimate.rationale,
            },
            "questions": list(self.questions),
            "needs_clarification": self.needs_clarification,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanResult:
        estimate = data.get("estimate") or {}
        return cls(
            issue_number=int(data["issue_number"]),
            title=str(data.get("title", "")),
            goal=str(data.get("goal", "")),
            why=str(data.get("why", "")),
            context=[
                ContextRef(path=c["path"], reason=c.get("reason", ""))
                for c in data.get("context", [])
            ],
            steps=[
                PlanStep(
                    title=s["title"], details=s.get("details", ""), files=tuple(s.get("files", ()))
                )
                for s in data.get("steps", [])
            ],
            validation_gates=list(data.get("validation_gates", [])),
            success_criteria=list(data.get("success_criteria", [])),
            failure_recovery=list(data.get("failure_recovery", [])),
            estimate=Estimate(
                size=estimate.get("size", "M"),
                complexity=estimate.get("complexity", "medium"),
                rationale=estimate.get("rationale", ""),
            ),
            questions=list(data.get("questions", [])),
            needs_clarification=bool(data.get("needs_clarification", False)),
        )

    def to_markdown(self) -> str:
        """The issue comment: the PRP with checkboxes, or the questions that block it."""
        if self.needs_clarification:
            lines = [
                f"## Questions before planning #{self.issue_number}",
                "",
                "The issue leaves open points that would otherwise be guesses:",
                "",
                *[f"{i}. {_one_line(q)}" for i, q in enumerate(self.questions, 1)],
                "",
                "Answer in a comment, then run `/factory plan` to plan again.",
            ]
            return "\n".join(lines) + "\n"
        lines = [f"## Plan for #{self.issue_number}: {_one_line(self.title)}", ""]
        lines += [f"**Goal:** {self.goal}", ""]
        if self.why:
            lines += [f"**Why:** {self.why}", ""]
        lines += ["### Context", ""]
        lines += [f"- `{_code(c.path)}`: {c.reason}" for c in self.context] or ["- (none needed)"]
        lines += ["", "### Implementation steps", ""]
        for i, step in enumerate(self.steps, 1):
            files = (
                f" (files: {', '.join(f'`{_code(f)}`' for f in step.files)})" if step.files else ""
            )
            lines.append(f"- [ ] **{i}. {_one_line(step.title)}**{files}")
            if step.details:
                lines += [f"  {line}" if line else "" for line in step.details.splitlines()]
        lines += ["", "### Validation gates", ""]
        lines += [f"- [ ] `{_code(g)}`" for g in self.validation_gates] or ["- (none configured)"]
        lines += ["", "### Success criteria", ""]
        lines += [f"- [ ] {_one_line(c)}" for c in self.success_criteria] or ["- (none stated)"]
        lines += ["", "### Failure recovery", ""]
        lines += [f"- {_one_line(r)}" for r in self.failure_recovery] or ["- (none stated)"]
        lines += ["", "### Estimate", ""]
        estimate = f"Size **{self.estimate.size}**, complexity **{self.estimate.complexity}**"
        lines.append(
            f"{estimate}: {self.estimate.rationale}" if self.estimate.rationale else estimate
        )
        return "\n".join(lines) + "\n"

    def for_coder(self) -> str:
        """The plan as the coder's prompt shows it (the Markdown without the run data)."""
        return self.to_markdown()


def _text(value: Any) -> str:
    # The model's text is sanitised too: an injected issue could ask it to hide instructions
    # (an HTML comment, invisible characters) in the plan that the coder later follows.
    return sanitize(value).strip() if isinstance(value, str) else ""


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [text for text in (_text(item) for item in value) if text]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _code(text: str) -> str:
    return _one_line(text).replace("`", "'")


def render_file_tree(paths: Sequence[str], *, max_entries: int = 400) -> str:
    """A listing of the repository's files that fits in `max_entries` lines.

    Small repositories are listed in full. Larger ones are listed breadth-first: a directory is
    expanded only while the listing stays within budget; the others show as `dir/ (N files)`.
    """
    files = sorted({p.strip("/") for p in paths if p.strip("/")})
    if len(files) <= max_entries:
        return "\n".join(files)
    children: dict[str, set[str]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for path in files:
        parts = path.split("/")
        for depth in range(len(parts)):
            parent = "/".join(parts[:depth])
            children[parent].add("/".join(parts[: depth + 1]))
            if depth < len(parts) - 1:
                counts["/".join(parts[: depth + 1])] += 1
    is_dir = set(counts)
    shown: set[str] = set(children[""])
    expanded: set[str] = {""}
    frontier = sorted((d for d in shown if d in is_dir), key=lambda d: (counts[d], d))
    while frontier:
        directory = frontier.pop(0)
        grown = len(shown) + len(children[directory])
        if grown > max_entries:
            continue
        shown |= children[directory]
        expanded.add(directory)
        frontier += [c for c in children[directory] if c in is_dir]
        frontier.sort(key=lambda d: (d.count("/"), counts[d], d))
    lines = []
    for entry in sorted(shown):
        if entry in is_dir and entry not in expanded:
            lines.append(f"{entry}/ ({counts[entry]} files)")
        elif entry not in is_dir:
            lines.append(entry)
    return "\n".join(lines)


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
        stop_reason: str,
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
            f"Plan the implementation of issue #{issue.number}, "
            f"opened by @{sanitize(issue.author)}.",
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
