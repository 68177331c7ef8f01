"""The reviewer: reads a pull request's diff against its plan and submits one review.

It runs the shared tool loop with read-only tools on a checkout of the PR's head (to read around
the changed lines) and `submit_review`, which ends the loop. The diff, the plan and what the
knowledge store has learned from earlier reviews sit in the cached system prompt. The verdict
decides whether the run goes on or back to the coder; the comments are posted as a GitHub review,
inline where GitHub allows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.budget import Budget, TokenUsage
from agents.llm import Block, LLMClient
from agents.loop import OnStep, ToolLoop, ToolOutput, ToolResultLike, Tools, truncate_middle
from agents.toolbox import READ_ONLY_TOOLS
from agents.untrusted import UNTRUSTED_DATA_RULE, sanitize, wrap_untrusted

APPROVE = "approve"
REQUEST_CHANGES = "request_changes"
_MAX_DIFF_CHARS = 120_000
_MAX_COMMENTS = 30

SUBMIT_REVIEW_TOOL: Mapping[str, Any] = {
    "name": "submit_review",
    "description": (
        "Submit your review of the pull request, exactly once. request_changes only for problems "
        "that must be fixed before merging (bugs, missing tests for changed behaviour, security "
        "issues, the plan not carried out); otherwise approve, with any suggestions as comments."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": [APPROVE, REQUEST_CHANGES]},
            "summary": {
                "type": "string",
                "description": "The review's overall message: what is good, what must change.",
            },
            "comments": {
                "type": "array",
                "description": "Inline comments on lines of the new version of changed files.",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "line": {"type": "integer", "minimum": 1},
                        "body": {"type": "string"},
                    },
                    "required": ["path", "line", "body"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["verdict", "summary"],
        "additionalProperties": False,
    },
}

SYSTEM_PROMPT = f"""\
You are the reviewing agent of Agent Factory, a bot that implements GitHub issues as pull requests.
Another agent, the coder, wrote the pull request below by following the plan below. Review it as a
careful senior engineer of this repository would:
- Does the change do what the plan and the issue ask, completely, and nothing unrelated?
- Is it correct (edge cases, error handling), tested (changed behaviour has tests) and safe (no
  secrets, no injection, no weakened checks)?
- Does it follow the repository's style and the lessons from earlier reviews listed below?
Comment on specific lines of the new version of changed files (path and line number as the diff's
new side numbers them), and say what to change. Do not comment on what is fine. Read files with
the tools when the diff alone is not enough. Finish by calling submit_review exactly once.

{UNTRUSTED_DATA_RULE}"""


@dataclass(frozen=True)
class ReviewNote:
    path: str
    line: int
    body: str


@dataclass
class ReviewResult:
    verdict: str
    summary: str
    comments: list[ReviewNote]
    usage: TokenUsage
    cost_usd: float
    trajectory: list[dict[str, Any]] = field(repr=False)

    @property
    def approved(self) -> bool:
        return self.verdict == APPROVE


class ReviewFailed(RuntimeError):
    """The model never submitted a review; carries what the attempt cost."""

    def __init__(
        self, detail: str, *, usage: TokenUsage, cost_usd: float, trajectory: list[dict[str, Any]]
    ) -> None:
        super().__init__(detail)
        self.usage = usage
        self.cost_usd = cost_usd
        self.trajectory = trajectory


class _ReviewTools:
    """Read-only repository tools plus `submit_review`."""

    def __init__(self, repo_tools: Tools | None) -> None:
        self._repo_tools = repo_tools
        defs = repo_tools.definitions() if repo_tools is not None else []
        self._read_only = [d for d in defs if d.get("name") in READ_ONLY_TOOLS]
        self._allowed = {d["name"] for d in self._read_only}
        self.result: tuple[str, str, list[ReviewNote]] | None = None

    def definitions(self) -> list[dict[str, Any]]:
        return [*self._read_only, dict(SUBMIT_REVIEW_TOOL)]

    async def call(self, name: str, tool_input: Mapping[str, Any]) -> ToolResultLike:
        if name == SUBMIT_REVIEW_TOOL["name"]:
            verdict = tool_input.get("verdict")
            summary = sanitize(str(tool_input.get("summary") or "")).strip()
            if verdict not in (APPROVE, REQUEST_CHANGES) or not summary:
                return ToolOutput(
                    "submit_review needs a verdict (approve or request_changes) and a summary.",
                    is_error=True,
                )
            notes = [
                ReviewNote(str(c["path"]).strip(), int(c["line"]), sanitize(str(c["body"])).strip())
                for c in list(tool_input.get("comments") or [])[:_MAX_COMMENTS]
                if isinstance(c, Mapping)
                and c.get("path")
                and isinstance(c.get("line"), int)
                and str(c.get("body") or "").strip()
            ]
            self.result = (str(verdict), summary, notes)
            return ToolOutput("Review received.", finished=True)
        if name in self._allowed and self._repo_tools is not None:
            return await self._repo_tools.call(name, tool_input)
        return ToolOutput(
            f"Unknown or unavailable tool {name!r} (the reviewer is read-only).", is_error=True
        )


@dataclass
class Reviewer:
    llm: LLMClient
    max_turns: int = 15
    max_tokens: int = 8192
    model: str | None = None

    async def review(
        self,
        *,
        plan_markdown: str,
        diff: str,
        budget: Budget,
        knowledge: str = "",
        tools: Tools | None = None,
        on_step: OnStep | None = None,
    ) -> ReviewResult:
        """Review `diff`; raises ReviewFailed (with its cost) if no review is submitted."""
        review_tools = _ReviewTools(tools)
        loop = ToolLoop(
            self.llm, max_turns=self.max_turns, max_tokens=self.max_tokens, model=self.model
        )
        outcome = await loop.run(
            system=self.system_blocks(plan_markdown, diff, knowledge),
            messages=[
                {"role": "user", "content": "Review the pull request above; call submit_review."}
            ],
            tools=review_tools,
            budget=budget,
            on_step=on_step,
        )
        if review_tools.result is None or not outcome.finished:
            raise ReviewFailed(
                f"the reviewer stopped without a review ({outcome.stop_reason}: {outcome.detail})",
                usage=outcome.usage,
                cost_usd=outcome.cost_usd,
                trajectory=outcome.trajectory,
            )
        verdict, summary, notes = review_tools.result
        return ReviewResult(
            verdict, summary, notes, outcome.usage, outcome.cost_usd, outcome.trajectory
        )

    @staticmethod
    def system_blocks(plan_markdown: str, diff: str, knowledge: str) -> list[Block]:
        parts = [
            "# The plan the pull request follows\n"
            + wrap_untrusted(plan_markdown.strip() or "(no plan)", source="plan"),
            "# The pull request's diff\n"
            + wrap_untrusted(truncate_middle(diff, _MAX_DIFF_CHARS), source="diff", verbatim=True),
        ]
        if knowledge.strip():
            parts.append(
                "# What this repository's knowledge base holds (code, earlier review lessons)\n"
                + wrap_untrusted(knowledge, source="knowledge base")
            )
        return [
            {"type": "text", "text": SYSTEM_PROMPT},
            {"type": "text", "text": "\n\n".join(parts)},
        ]


def render_diff(files: Sequence[Any]) -> str:
    """The PR's files as one unified diff, as GitHub serves it (binary files named only)."""
    sections = []
    for changed in files:
        header = f"--- {changed.previous_filename or changed.filename}\n+++ {changed.filename}"
        body = changed.patch if changed.patch else f"({changed.status}; no textual diff)"
        sections.append(f"{header}\n{body}")
    return "\n".join(sections)
