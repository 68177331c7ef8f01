"""The PRP (product requirements prompt): the plan the planner writes and the coder follows.

One model says everything about it: the fields and their meaning, the JSON schema of the
planner's `submit_plan` tool (derived from the fields), how a plan is stored (`to_dict` /
`from_dict`) and how it reads on the issue (`to_markdown`). Values arrive leniently: items
without their key field are dropped and an estimate outside the scale falls back to its
default, so a sloppy but usable submission still makes a plan. Sanitising the model's text is
the planner's job: this module imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import Field, TypeAdapter, field_validator
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

SIZES: tuple[str, ...] = ("XS", "S", "M", "L", "XL")
COMPLEXITIES: tuple[str, ...] = ("low", "medium", "high")
SUBMIT_PLAN = "submit_plan"


@dataclass(frozen=True)
class ContextRef:
    path: str = Field(description="File path or URL.")
    reason: str = Field(default="", description="Why it matters for this change.")

    @field_validator("reason", mode="before")
    @classmethod
    def _reason(cls, value: Any) -> str:
        return _text(value)


@dataclass(frozen=True)
class PlanStep:
    title: str
    details: str = ""
    files: tuple[str, ...] = ()

    @field_validator("details", mode="before")
    @classmethod
    def _details(cls, value: Any) -> str:
        return _text(value)

    @field_validator("files", mode="before")
    @classmethod
    def _files(cls, value: Any) -> Any:
        return _strings(value)


@dataclass(frozen=True)
class Estimate:
    size: str = Field(default="M", json_schema_extra={"enum": list(SIZES)})
    complexity: str = Field(default="medium", json_schema_extra={"enum": list(COMPLEXITIES)})
    rationale: str = ""

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> str:
        size = value.strip().upper() if isinstance(value, str) else ""
        return size if size in SIZES else "M"

    @field_validator("complexity", mode="before")
    @classmethod
    def _complexity(cls, value: Any) -> str:
        complexity = value.strip().lower() if isinstance(value, str) else ""
        return complexity if complexity in COMPLEXITIES else "medium"

    @field_validator("rationale", mode="before")
    @classmethod
    def _rationale(cls, value: Any) -> str:
        return _text(value)


@dataclass
class Plan:
    """A PRP for one issue, or the questions that must be answered before there can be one."""

    # From the issue, not from the model: left out of the submit_plan schema.
    issue_number: SkipJsonSchema[int]
    title: SkipJsonSchema[str]
    goal: str = Field(description="What the change achieves, in one or two sentences.")
    why: str = Field(default="", description="The user value or problem it solves.")
    context: list[ContextRef] = Field(
        default_factory=list, description="Files, docs and references the implementer must read."
    )
    steps: list[PlanStep] = Field(
        default_factory=list,
        description="Implementation steps in order; each small enough for one commit.",
    )
    validation_gates: list[str] = Field(
        default_factory=list,
        description="Commands that must pass (tests, linters) besides configured ones.",
    )
    success_criteria: list[str] = Field(default_factory=list)
    failure_recovery: list[str] = Field(
        default_factory=list, description="What to do if a step or gate fails; known risks."
    )
    estimate: Estimate = Field(default_factory=Estimate)
    questions: list[str] = Field(
        default_factory=list,
        description="Specific questions for the author, if clarification is needed.",
    )
    needs_clarification: bool = Field(
        default=False,
        description="True if questions must be answered before a plan is possible.",
    )

    # What the planner must always submit; everything else may be left out.
    SUBMISSION_REQUIRED: ClassVar[tuple[str, ...]] = ("needs_clarification", "goal")

    @field_validator("goal", "why", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> str:
        return _text(value)

    @field_validator(
        "validation_gates", "success_criteria", "failure_recovery", "questions", mode="before"
    )
    @classmethod
    def _string_list(cls, value: Any) -> list[str]:
        return _strings(value)

    @field_validator("context", mode="before")
    @classmethod
    def _context(cls, value: Any) -> list[Any]:
        return _keyed(value, ContextRef, "path")

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, value: Any) -> list[Any]:
        return _keyed(value, PlanStep, "title")

    @field_validator("estimate", mode="before")
    @classmethod
    def _estimate(cls, value: Any) -> Any:
        return value if isinstance(value, (Mapping, Estimate)) else {}

    # ------------------------------------------------------------------ storing

    def to_dict(self) -> dict[str, Any]:
        """The plan itself (nothing about the run that made it), e.g. for `Feature.plan`."""
        return _PLAN.dump_python(self, mode="json")  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return TypeAdapter(cls).validate_python(dict(data))

    @classmethod
    def submission_schema(cls) -> dict[str, Any]:
        """The `submit_plan` tool's input schema: the fields above, as JSON Schema."""
        schema = _inline(_PLAN.json_schema())
        schema.pop("description", None)  # the docstring is for readers of this module
        schema["required"] = list(cls.SUBMISSION_REQUIRED)
        return schema

    # ------------------------------------------------------------------ reading

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


_PLAN: TypeAdapter[Plan] = TypeAdapter(Plan)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _strings(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)):
        return []
    return [item.strip() for item in value if isinstance(item, str) and item.strip()]


def _keyed(value: Any, kind: type, key: str) -> list[Any]:
    """Items that are already ``kind`` or mappings with a non-empty ``key``; others dropped."""
    if not isinstance(value, (list, tuple)):
        return []
    kept: list[Any] = []
    for item in value:
        if isinstance(item, kind):
            kept.append(item)
        elif isinstance(item, Mapping) and isinstance(item.get(key), str) and item[key].strip():
            kept.append({k: v for k, v in item.items() if isinstance(k, str)})
    return kept


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its `$defs` references written out and pydantic's titles left out."""
    definitions = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {
                k: walk(v)
                for k, v in node.items()
                if k != "$defs" and not (k == "title" and isinstance(v, str))
            }
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _code(text: str) -> str:
    return _one_line(text).replace("`", "'")
