"""One check run per stage on the pull request's head commit, in step with the status comment.

What each check should say follows from the stored run (``desired_check``). The check runs
written on a head are remembered in the store, so a sync writes only what changed, and GitHub
is looked up (one listing) only when a check run may exist that was not remembered: the
worker died between creating it and noting it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from bot.contracts import markers
from bot.contracts.lifecycle import (
    STAGE_ORDER,
    FeatureState,
    Outcome,
    Stage,
    TaskState,
    stage_for_state,
)
from bot.contracts.runs import FeatureView
from bot.db import Task
from bot.github import RepoClient
from bot.github.models import CheckConclusion, CheckOutput, CheckStatus
from bot.store.runs import CheckRunMemo, RunStore

_CONCLUSION: dict[str, tuple[CheckConclusion, str]] = {
    Outcome.SUCCEEDED.value: ("success", "done"),
    Outcome.CHANGES_REQUESTED.value: ("failure", "changes requested"),
    Outcome.NEEDS_INPUT.value: ("neutral", "waiting for input"),
    Outcome.FAILED.value: ("failure", "failed"),
}


@dataclass(frozen=True)
class DesiredCheck:
    status: CheckStatus
    conclusion: CheckConclusion | None
    title: str
    summary: str


def desired_check(
    stage: Stage, state: FeatureState, task: Task | None, enabled: Collection[Stage]
) -> DesiredCheck:
    """What the stage's check run should say about the run as stored."""
    if stage not in enabled:
        return DesiredCheck(
            "completed",
            "skipped",
            "not enabled",
            f"The {stage.title.lower()} stage is not enabled for this repository.",
        )
    if stage_for_state(state) == stage and not state.is_terminal:
        return DesiredCheck("in_progress", None, "running", f"{stage.title} is running.")
    if task is not None and task.state == TaskState.CANCELLED.value:
        return DesiredCheck("completed", "cancelled", "cancelled", "The run was cancelled.")
    if task is not None and task.outcome is not None:
        conclusion, title = _CONCLUSION[task.outcome]
        summary = task.result_summary or title
        details = (task.effects or {}).get("details") or ""
        return DesiredCheck(
            "completed", conclusion, title, summary + (f"\n\n{details}" if details else "")
        )
    if state is FeatureState.CANCELLED:
        return DesiredCheck(
            "completed", "cancelled", "cancelled", "The run was cancelled before this stage."
        )
    if state is FeatureState.FAILED:
        return DesiredCheck(
            "completed", "skipped", "not reached", "The run failed before this stage."
        )
    return DesiredCheck("queued", None, "waiting", f"{stage.title} has not started yet.")


async def sync_checks(
    gh: RepoClient,
    store: RunStore,
    feature: FeatureView,
    state: FeatureState,
    tasks: Sequence[Task],
    enabled: Collection[Stage],
) -> dict[str, str]:
    """Bring every stage's check run on the run's head to what it should say; their URLs."""
    head = feature.head_sha
    assert head
    latest: dict[Stage, Task] = {}
    for task in sorted(tasks, key=lambda t: (t.round, t.id)):
        latest[Stage(task.kind)] = task
    shown = await store.check_runs(feature.id, head)
    written = dict(shown.written)
    named = [stage for stage in STAGE_ORDER if stage.check_name is not None]
    missing = [stage for stage in named if stage.check_name not in written]
    if missing and shown.creating:
        for run in await gh.list_check_runs(head):
            if run.name not in written:
                found = CheckRunMemo(run.id, run.html_url or "", run.status, run.conclusion)
                written[run.name] = found
                await store.remember_check_run(feature, head, run.name, found)
    elif missing:
        await store.creating_check_runs(feature, head)
    urls: dict[str, str] = {}
    for stage in named:
        name = stage.check_name
        assert name is not None
        want = desired_check(stage, state, latest.get(stage), enabled)
        memo = written.get(name)
        if memo is None or (memo.status, memo.conclusion) != (want.status, want.conclusion):
            memo = await _write(gh, feature, stage, name, head, want, memo)
            await store.remember_check_run(feature, head, name, memo)
        urls[name] = memo.url
    return urls


async def _write(
    gh: RepoClient,
    feature: FeatureView,
    stage: Stage,
    name: str,
    head: str,
    want: DesiredCheck,
    memo: CheckRunMemo | None,
) -> CheckRunMemo:
    output = CheckOutput(title=f"{stage.title}: {want.title}", summary=want.summary[:60000])
    if memo is None:
        run = await gh.create_check_run(
            name,
            head,
            external_id=markers.check_external_id(feature.id, stage),
            status=want.status,
            conclusion=want.conclusion,
            output=output,
        )
    else:
        run = await gh.update_check_run(
            memo.id, status=want.status, conclusion=want.conclusion, output=output
        )
    return CheckRunMemo(run.id, run.html_url or "", want.status, want.conclusion)
