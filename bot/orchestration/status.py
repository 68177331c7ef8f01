"""The one status comment on the issue: what it shows, built from the stored run.

``status_view`` reads the run and its steps as the store has them; ``render_status`` turns the
view into the comment's Markdown. Only the status projector writes the comment.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.contracts import markers
from bot.contracts.lifecycle import (
    STAGE_ORDER,
    FeatureState,
    Outcome,
    Stage,
    TaskState,
    stage_for_state,
)
from bot.db import Feature, Task


@dataclass(frozen=True)
class StageLine:
    state: str  # pending | running | done | failed | skipped | waiting | cancelled
    note: str = ""


@dataclass(frozen=True)
class StatusView:
    feature_id: int
    repository: str
    issue_number: int
    state: FeatureState
    round: int
    max_rounds: int
    stages: Mapping[Stage, StageLine]
    enabled: Collection[Stage]
    started_at: datetime
    now: datetime
    cost_usd: float
    tokens: int
    branch: str | None = None
    pr_number: int | None = None
    plan_url: str | None = None
    checks: Mapping[str, str] = field(default_factory=dict)  # name -> url
    deployment_url: str | None = None
    error: str | None = None
    server_url: str = "https://github.com"


_ICON = {
    "pending": "⬜",
    "running": "⏳",
    "done": "✅",
    "failed": "❌",
    "skipped": "⏭️",
    "waiting": "✋",
    "cancelled": "🚫",
}

_HEADLINE = {
    FeatureState.QUEUED: "waiting for a free slot",
    FeatureState.PLANNING: "planning",
    FeatureState.AWAITING_APPROVAL: "waiting for plan approval",
    FeatureState.AWAITING_CLARIFICATION: "waiting for answers to the plan's questions",
    FeatureState.IMPLEMENTATION: "implementing",
    FeatureState.REVIEW: "reviewing",
    FeatureState.TESTING: "testing",
    FeatureState.DEPLOYMENT: "deploying",
    FeatureState.COMPLETED: "completed",
    FeatureState.FAILED: "failed",
    FeatureState.CANCELLED: "cancelled",
}


def _elapsed(view: StatusView) -> str:
    seconds = max(0, int((view.now - view.started_at).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"


# What the reader can do next, for the states that wait on them (FAILED also says what went wrong).
_NEXT_STEP: dict[FeatureState, str] = {
    FeatureState.CANCELLED: (
        "This run was cancelled. Label the issue again or comment `/factory plan` to start a new one."
    ),
    FeatureState.QUEUED: (
        "Other runs in this installation are using every slot; this one starts as soon as one ends."
    ),
    FeatureState.AWAITING_APPROVAL: (
        "Read the plan, then comment `/factory approve` to implement it, or "
        "`/factory plan <guidance>` to re-plan."
    ),
    FeatureState.AWAITING_CLARIFICATION: (
        "Answer the questions in the plan comment, then comment `/factory plan` to re-plan."
    ),
}


def render_status(view: StatusView) -> str:
    lines = [
        markers.status(view.feature_id),
        f"### 🏭 Agent Factory · run {view.feature_id}: **{_HEADLINE[view.state]}**",
        "",
        *_stage_lines(view),
        "",
    ]
    links = _links(view)
    if links:
        lines.append("**Links:** " + " · ".join(links))
    round_note = f" · round {view.round + 1} of {view.max_rounds}" if view.round else ""
    lines.append(
        f"**Elapsed:** {_elapsed(view)} · **LLM cost so far:** ${view.cost_usd:.2f} "
        f"({view.tokens:,} tokens){round_note}"
    )
    if view.state is FeatureState.FAILED:
        lines += [
            "",
            f"**What went wrong:** {view.error or 'unknown error'}",
            "",
            (
                "To try again, comment `/factory retry` (re-runs the failed stage) or "
                "`/factory plan <guidance>` to start over with a new plan."
            ),
        ]
    elif view.state in _NEXT_STEP:
        lines += ["", _NEXT_STEP[view.state]]
    lines += ["", "<sub>Commands: `/factory help`</sub>"]
    return "\n".join(lines)


def _stage_lines(view: StatusView) -> list[str]:
    lines = []
    for stage in STAGE_ORDER:
        if stage not in view.enabled:
            lines.append(f"- ⏭️ {stage.title}: not enabled")
            continue
        line = view.stages.get(stage, StageLine("pending"))
        note = f": {line.note}" if line.note else ""
        lines.append(f"- {_ICON.get(line.state, '⬜')} {stage.title} ({line.state}){note}")
    return lines


def _links(view: StatusView) -> list[str]:
    repo_url = f"{view.server_url}/{view.repository}"
    links: list[str] = []
    if view.plan_url:
        links.append(f"[plan]({view.plan_url})")
    if view.branch:
        links.append(f"branch [`{view.branch}`]({repo_url}/tree/{view.branch})")
    if view.pr_number:
        links.append(f"PR #{view.pr_number}")
    for name, url in sorted(view.checks.items()):
        links.append(f"[{name}]({url})")
    if view.deployment_url:
        links.append(f"[deployment]({view.deployment_url})")
    return links


def status_view(
    feature: Feature,
    tasks: Sequence[Task],
    *,
    enabled: Collection[Stage],
    max_rounds: int,
    checks: Mapping[str, str],
    server_url: str,
    now: datetime,
) -> StatusView:
    latest: dict[Stage, Task] = {}
    for task in tasks:
        latest[Stage(task.kind)] = task
    state = FeatureState(feature.state)
    lines = {stage: _line(stage, state, feature.round, latest.get(stage)) for stage in STAGE_ORDER}
    if state is FeatureState.AWAITING_APPROVAL:
        lines[Stage.PLAN] = StageLine("waiting", "waiting for `/factory approve`")
    plan_url = None
    if feature.plan_comment_id:
        plan_url = (
            f"{server_url}/{feature.repository}/issues/{feature.issue_number}"
            f"#issuecomment-{feature.plan_comment_id}"
        )
    return StatusView(
        feature_id=feature.id,
        repository=feature.repository,
        issue_number=feature.issue_number,
        state=state,
        round=feature.round,
        max_rounds=max_rounds,
        stages=lines,
        enabled=enabled,
        started_at=_aware(feature.created_at),
        now=now,
        cost_usd=feature.cost_usd,
        tokens=feature.tokens,
        branch=feature.branch,
        pr_number=feature.pr_number,
        plan_url=plan_url,
        checks=checks,
        error=feature.error,
        server_url=server_url,
    )


def _line(stage: Stage, state: FeatureState, round_: int, task: Task | None) -> StageLine:
    if stage == stage_for_state(state) and not state.is_terminal:
        return StageLine("running", f"round {round_ + 1}" if round_ else "")
    if task is None:
        return StageLine("cancelled" if state is FeatureState.CANCELLED else "pending")
    if task.state == TaskState.CANCELLED.value:
        return StageLine("cancelled")
    if task.outcome == Outcome.FAILED.value:
        return StageLine("failed", (task.result_summary or "")[:200])
    if task.outcome == Outcome.CHANGES_REQUESTED.value:
        return StageLine("done", "changes requested")
    if task.outcome == Outcome.NEEDS_INPUT.value:
        return StageLine("waiting", "questions asked")
    if task.outcome is not None:
        return StageLine("done", (task.result_summary or "")[:200])
    return StageLine("pending")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
