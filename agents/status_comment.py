"""The one status comment on the issue, edited in place as the run advances."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from bot.contracts.lifecycle import STAGE_ORDER, FeatureState, Stage


def status_marker(feature_id: int) -> str:
    return f"<!-- agent-factory:status:{feature_id} -->"


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


def render_status(view: StatusView) -> str:
    repo_url = f"{view.server_url}/{view.repository}"
    lines = [
        status_marker(view.feature_id),
        f"### 🏭 Agent Factory · run {view.feature_id}: **{_HEADLINE[view.state]}**",
        "",
    ]
    for stage in STAGE_ORDER:
        if stage not in view.enabled:
            lines.append(f"- ⏭️ {stage.title}: not enabled")
            continue
        line = view.stages.get(stage, StageLine("pending"))
        note = f": {line.note}" if line.note else ""
        lines.append(f"- {_ICON.get(line.state, '⬜')} {stage.title} ({line.state}){note}")
    lines.append("")
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
            "To try again, comment `/factory retry` (re-runs the failed stage) or "
            "`/factory plan <guidance>` to start over with a new plan.",
        ]
    elif view.state is FeatureState.CANCELLED:
        lines += ["", "This run was cancelled. Label the issue again or comment `/factory plan` to start a new one."]
    elif view.state is FeatureState.QUEUED:
        lines += ["", "Other runs in this installation are using every slot; this one starts as soon as one ends."]
    elif view.state is FeatureState.AWAITING_APPROVAL:
        lines += ["", "Read the plan, then comment `/factory approve` to implement it, or `/factory plan <guidance>` to re-plan."]
    elif view.state is FeatureState.AWAITING_CLARIFICATION:
        lines += ["", "Answer the questions in the plan comment, then comment `/factory plan` to re-plan."]
    lines += ["", "<sub>Commands: `/factory help`</sub>"]
    return "\n".join(lines)
