"""End to end: a labelled issue driven to its end on the fake GitHub, real Redis and arq.

The stage agents are scripted (tests/e2e/scripted_agents.py) but make real GitHub effects, so
these tests check what a person would see: one status comment, one plan comment, one branch,
one PR, one review per round, one check run per stage, and an audit trail; also after workers
are killed inside every step, after Redis loses its data, and when two labels race.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.contracts.lifecycle import Outcome, Stage
from bot.db import Feature
from bot.github.errors import GitHubError
from tests.e2e.harness import Bot, running_bot
from tests.e2e.scripted_agents import (
    ScriptedCoder,
    ScriptedPlanner,
    ScriptedReviewer,
    scripted_agents,
)
from tests.fakegithub import BOT_LOGIN

pytestmark = pytest.mark.slow

STAGE_CHECKS = {
    "Agent Factory / plan",
    "Agent Factory / review",
    "Agent Factory / tests",
    "Agent Factory / deploy",
}


def _marked(comments: list, marker: str) -> list:
    return [c for c in comments if marker in c.body]


async def assert_completed_once(bot: Bot, issue: int) -> Feature:
    features = await bot.features()
    assert len(features) == 1, [f.state for f in features]
    feature = features[0]
    assert feature.state == "completed", feature.error
    fake, repo = bot.fake, bot.repo

    reactions = fake.reactions(repo, issue)
    assert any(r.content == "eyes" for r in reactions)

    async def status_says_completed() -> bool:
        found = _marked(fake.comments(repo, issue), f"agent-factory:status:{feature.id}")
        return bool(found) and "**completed**" in found[0].body

    # The database moves first; the status comment follows a moment later.
    await bot.wait_for(status_says_completed, timeout=15, what="status comment to say completed")
    comments = fake.comments(repo, issue)
    status = _marked(comments, f"agent-factory:status:{feature.id}")
    assert len(status) == 1
    assert "completed" in status[0].body and "✅ Plan" in status[0].body
    assert len(_marked(comments, f"agent-factory:plan:{feature.id}")) == 1

    branches = [b for b in fake.git(repo).branches() if b.startswith("factory/")]
    assert branches == [feature.branch]
    pulls = fake.pulls(repo)
    assert len(pulls) == 1 and pulls[0].number == feature.pr_number
    log = fake.git_log(repo, feature.branch)
    assert sum(1 for c in log if c.message.startswith("Write hello.py")) == 1

    reviews = fake.reviews(repo, feature.pr_number)
    assert len([r for r in reviews if "agent-factory:review" in (r.body or "")]) == 1

    runs = fake.check_runs(repo, feature.head_sha)
    names = [r.name for r in runs]
    assert sorted(names) == sorted(STAGE_CHECKS), names
    assert all(r.conclusion == "success" for r in runs), [(r.name, r.conclusion) for r in runs]

    audit = await bot.audit(feature.id)
    moves = [(a.from_state, a.to_state) for a in audit if a.kind == "feature.transition"]
    assert moves == [
        ("planning", "implementation"),
        ("implementation", "review"),
        ("review", "testing"),
        ("testing", "deployment"),
        ("deployment", "completed"),
    ]
    assert all(a.cause for a in audit)
    return feature


async def test_labelled_issue_reaches_completed_with_status_checks_and_audit(
    tmp_path: Path, redis_url: str
) -> None:
    async with running_bot(tmp_path, redis_url) as bot:
        bot.start_worker(scripted_agents())
        issue = bot.fake.create_issue(bot.repo, "Add a greeting", "Print hello.", user="alice")
        bot.fake.label_issue(bot.repo, issue, "factory", user="alice")
        await bot.wait_for_state("completed", "failed", timeout=90)
        feature = await assert_completed_once(bot, issue)
        assert feature.cost_usd == pytest.approx(0.03)


async def test_worker_killed_inside_every_step_reaches_the_same_end(
    tmp_path: Path, redis_url: str
) -> None:
    crash_dir = tmp_path / "crashes"
    crash_dir.mkdir()
    async with running_bot(tmp_path, redis_url) as bot:
        issue = bot.fake.create_issue(bot.repo, "Add a greeting", "Print hello.", user="alice")
        bot.fake.label_issue(bot.repo, issue, "factory", user="alice")
        proc = bot.spawn_worker(crash_dir)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            features = await bot.features()
            if features and features[-1].state in ("completed", "failed"):
                break
            if proc.poll() is not None:  # killed itself inside a step: start another
                proc = bot.spawn_worker(crash_dir)
            await asyncio.sleep(0.2)
        crashed = sorted(p.name for p in crash_dir.iterdir())
        assert crashed == sorted(s.value for s in Stage), crashed
        feature = await assert_completed_once(bot, issue)
        # The model calls of the implementation try that died were paid for: they count, once.
        assert feature.cost_usd == pytest.approx(0.01 + 0.02 + 0.02)


class GatedCoder(ScriptedCoder):
    """Waits until the test opens the gate, so Redis can be flushed mid-run."""

    def __init__(self, gate: asyncio.Event) -> None:
        self.gate = gate

    async def run(self, ctx):  # type: ignore[no-untyped-def]
        await self.gate.wait()
        return await super().run(ctx)


async def test_flushing_redis_mid_run_and_restarting_the_worker_still_completes(
    tmp_path: Path, redis_url: str
) -> None:
    async with running_bot(tmp_path, redis_url) as bot:
        gate = asyncio.Event()
        agents = {**scripted_agents(), Stage.IMPLEMENT: GatedCoder(gate)}
        bot.start_worker(agents)
        issue = bot.fake.create_issue(bot.repo, "Add a greeting", "Print hello.", user="alice")
        bot.fake.label_issue(bot.repo, issue, "factory", user="alice")
        await bot.wait_for_state("implementation", timeout=60)
        await asyncio.sleep(0.5)
        await bot.stop_workers()
        client = aioredis.from_url(redis_url)
        await client.flushdb()
        await client.aclose()
        gate.set()
        bot.start_worker(agents)
        await bot.wait_for_state("completed", "failed", timeout=90)
        await assert_completed_once(bot, issue)


async def test_two_concurrent_labels_start_one_run(tmp_path: Path, redis_url: str) -> None:
    async with running_bot(tmp_path, redis_url) as bot:
        issue = bot.fake.create_issue(bot.repo, "Add a greeting", "Print hello.", user="alice")
        bot.fake.label_issue(bot.repo, issue, "factory", user="alice")
        bot.fake.deliver(
            "issues", "labeled", repo=bot.repo, number=issue, label="factory", sender="alice"
        )
        await bot.fake.settle_webhooks()
        bot.start_worker(scripted_agents())
        await bot.wait_for_state("completed", "failed", timeout=90)
        await asyncio.sleep(1)
        await assert_completed_once(bot, issue)
        replies = [c for c in bot.fake.comments(bot.repo, issue) if "already in progress" in c.body]
        # The second label either found the run active (one reply) or arrived after the
        # start had been recorded; it never started a second run.
        assert len(replies) <= 1
        assert all(c.user.login == BOT_LOGIN for c in replies)


async def test_runs_beyond_the_installation_limit_wait_for_a_free_slot(
    tmp_path: Path, redis_url: str
) -> None:
    async with running_bot(tmp_path, redis_url, env={"FACTORY_MAX_CONCURRENT_RUNS": "1"}) as bot:
        gate = asyncio.Event()
        bot.start_worker({**scripted_agents(), Stage.IMPLEMENT: GatedCoder(gate)})
        first = bot.fake.create_issue(bot.repo, "First", "one", user="alice")
        second = bot.fake.create_issue(bot.repo, "Second", "two", user="alice")
        bot.fake.label_issue(bot.repo, first, "factory", user="alice")
        await bot.wait_for_state("implementation", timeout=60)
        bot.fake.label_issue(bot.repo, second, "factory", user="alice")

        async def second_is_waiting() -> bool:
            features = await bot.features()
            if len(features) < 2 or features[1].state != "queued":
                return False
            status = _marked(
                bot.fake.comments(bot.repo, second), f"agent-factory:status:{features[1].id}"
            )
            return bool(status) and "waiting for a free slot" in status[0].body

        await bot.wait_for(second_is_waiting, timeout=30, what="the second run to wait for a slot")
        assert (await bot.features())[0].state == "implementation"
        gate.set()

        async def both_completed() -> bool:
            return [f.state for f in await bot.features()] == ["completed", "completed"]

        await bot.wait_for(both_completed, timeout=90, what="both runs to complete")
        first_done, second_done = await bot.features()
        # The second run only began planning after the first had finished.
        assert first_done.finished_at is not None and second_done.created_at is not None
        second_audit = await bot.audit(second_done.id)
        started = next(
            a for a in second_audit if a.kind == "feature.transition" and a.from_state == "queued"
        )
        assert started.at >= first_done.finished_at


async def test_progress_is_published_on_redis_per_feature(tmp_path: Path, redis_url: str) -> None:
    listener = aioredis.from_url(redis_url)
    pubsub = listener.pubsub()
    try:
        async with running_bot(tmp_path, redis_url) as bot:
            # Channels are named after the app, so other bots on this Redis are not heard.
            await pubsub.psubscribe(f"factory:{bot.fake.app_id}:feature:*")
            bot.start_worker(scripted_agents())
            issue = bot.fake.create_issue(bot.repo, "Add a greeting", "Print hello.", user="alice")
            bot.fake.label_issue(bot.repo, issue, "factory", user="alice")
            feature = await bot.wait_for_state("completed", "failed", timeout=90)
            seen: list[dict] = []
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                if message is None:
                    if any(m.get("state") == "completed" for m in seen):
                        break
                    continue
                assert (
                    message["channel"] == f"factory:{bot.fake.app_id}:feature:{feature.id}".encode()
                )
                seen.append(json.loads(message["data"]))
        states = [m["state"] for m in seen if m.get("event") == "state"]
        assert states == ["implementation", "review", "testing", "deployment", "completed"]
        assert any(m.get("event") == "recorded" and m.get("pr_number") for m in seen)
    finally:
        await pubsub.aclose()
        await listener.aclose()


async def test_rerequesting_a_stage_check_reruns_that_stage(tmp_path: Path, redis_url: str) -> None:
    async with running_bot(tmp_path, redis_url) as bot:
        bot.start_worker(scripted_agents())
        issue = bot.fake.create_issue(bot.repo, "Add a greeting", "Print hello.", user="alice")
        bot.fake.label_issue(bot.repo, issue, "factory", user="alice")
        await bot.wait_for_state("completed", "failed", timeout=90)
        feature = await assert_completed_once(bot, issue)
        tests_check = next(
            r
            for r in bot.fake.check_runs(bot.repo, feature.head_sha)
            if r.name == "Agent Factory / tests"
        )
        bot.fake.rerequest_check_run(bot.repo, tests_check.id, user="alice")

        async def reran() -> bool:
            audit = await bot.audit(feature.id)
            moves = [
                (a.from_state, a.to_state, a.cause) for a in audit if a.kind == "feature.transition"
            ]
            return (
                "completed",
                "testing",
                "check Agent Factory / tests re-requested",
            ) in moves and moves[-1][1] == "completed"

        await bot.wait_for(
            reran, timeout=60, what="the tests stage to run again and the run to complete"
        )
        # Still one check run per stage on the head commit, brought up to date in place.
        runs = bot.fake.check_runs(bot.repo, feature.head_sha)
        assert sorted(r.name for r in runs) == sorted(STAGE_CHECKS)
        assert all(r.conclusion == "success" for r in runs)


async def test_review_asking_for_changes_loops_back_once_per_round(
    tmp_path: Path, redis_url: str
) -> None:
    async with running_bot(tmp_path, redis_url) as bot:
        reviewer = ScriptedReviewer([Outcome.CHANGES_REQUESTED, Outcome.SUCCEEDED])
        bot.start_worker({**scripted_agents(), Stage.REVIEW: reviewer})
        issue = bot.fake.create_issue(bot.repo, "Add a greeting", "Print hello.", user="alice")
        bot.fake.label_issue(bot.repo, issue, "factory", user="alice")
        feature = await bot.wait_for_state("completed", "failed", timeout=90)
        assert feature.state == "completed", feature.error
        assert feature.round == 1
        reviews = [
            r
            for r in bot.fake.reviews(bot.repo, feature.pr_number)
            if "agent-factory:review" in (r.body or "")
        ]
        assert len(reviews) == 2  # one per round
        log = [c.message for c in bot.fake.git_log(bot.repo, feature.branch)]
        assert sum(m.startswith("Write hello.py (round 0)") for m in log) == 1
        assert sum(m.startswith("Write hello.py (round 1)") for m in log) == 1
        assert bot.fake.file_at(bot.repo, feature.branch, "hello.py") == "print('hello, round 1')\n"
        moves = [
            (a.from_state, a.to_state)
            for a in await bot.audit(feature.id)
            if a.kind == "feature.transition"
        ]
        assert ("review", "implementation") in moves


async def test_a_run_that_exhausts_its_rounds_fails_and_says_why(
    tmp_path: Path, redis_url: str
) -> None:
    yml = "max_rounds: 2\nstages: {test: false, deploy: false}\n"
    async with running_bot(
        tmp_path, redis_url, files={"README.md": "# demo\n", ".github/factory.yml": yml}
    ) as bot:
        reviewer = ScriptedReviewer([Outcome.CHANGES_REQUESTED] * 5)
        bot.start_worker({**scripted_agents(), Stage.REVIEW: reviewer})
        issue = bot.fake.create_issue(bot.repo, "Add a greeting", "Print hello.", user="alice")
        bot.fake.label_issue(bot.repo, issue, "factory", user="alice")
        feature = await bot.wait_for_state("completed", "failed", timeout=90)
        assert feature.state == "failed"
        assert "giving up after 2 rounds" in (feature.error or "")

        async def status_explains() -> bool:
            found = _marked(
                bot.fake.comments(bot.repo, issue), f"agent-factory:status:{feature.id}"
            )
            return (
                bool(found)
                and "giving up after 2 rounds" in found[0].body
                and "/factory retry" in found[0].body
            )

        await bot.wait_for(
            status_explains, timeout=15, what="the status comment to explain the failure"
        )


class FlakyPlanner(ScriptedPlanner):
    """GitHub answers 502 the first time: the step must be retried, not failed."""

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, ctx):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == 1:
            raise GitHubError("read issue", 502, "Bad Gateway")
        return await super().run(ctx)


async def test_a_transient_github_failure_retries_the_step_with_backoff(
    tmp_path: Path, redis_url: str
) -> None:
    async with running_bot(tmp_path, redis_url) as bot:
        planner = FlakyPlanner()
        bot.start_worker({**scripted_agents(), Stage.PLAN: planner})
        issue = bot.fake.create_issue(bot.repo, "Add a greeting", "Print hello.", user="alice")
        bot.fake.label_issue(bot.repo, issue, "factory", user="alice")
        feature = await bot.wait_for_state("completed", "failed", timeout=90)
        assert feature.state == "completed", feature.error
        assert planner.calls == 2
        await assert_completed_once(bot, issue)


class HeldPlanner(ScriptedPlanner):
    """Plans the first run at once; a later run stays in planning (a slow model)."""

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, ctx):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls > 1:
            await asyncio.sleep(120)
        return await super().run(ctx)


async def test_pr_events_during_a_later_run_on_the_issue_reach_that_run(
    tmp_path: Path, redis_url: str
) -> None:
    # A new run on an issue reuses the issue's branch and PR but records the PR only when its
    # implementation ends; closing the PR before then must stop the run that is going on.
    async with running_bot(tmp_path, redis_url) as bot:
        planner = HeldPlanner()
        bot.start_worker({**scripted_agents(), Stage.PLAN: planner})
        issue = bot.fake.create_issue(bot.repo, "Add a greeting", "Print hello.", user="alice")
        bot.fake.label_issue(bot.repo, issue, "factory", user="alice")
        first = await bot.wait_for_state("completed", "failed", timeout=90)
        assert first.state == "completed" and first.pr_number, first.error

        bot.fake.comment(bot.repo, issue, "/factory plan", user="alice")

        async def second_is_planning() -> bool:
            return planner.calls == 2

        await bot.wait_for(second_is_planning, timeout=30, what="a second run to be planning")
        bot.fake.close_pr(bot.repo, first.pr_number)

        async def second_cancelled() -> bool:
            return [f.state for f in await bot.features()] == ["completed", "cancelled"]

        await bot.wait_for(second_cancelled, timeout=30, what="the second run to be cancelled")
        second = (await bot.features())[1]
        moves = [
            (a.from_state, a.to_state, a.cause)
            for a in await bot.audit(second.id)
            if a.kind == "feature.transition"
        ]
        assert moves[-1] == ("planning", "cancelled", "pull_request.closed")


DEPLOY_WORKFLOW = """\
name: Deploy
on:
  workflow_dispatch:
    inputs:
      environment: {required: true}
      rollback: {required: false}
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps: [{run: ./deploy.sh}]
"""


@pytest.mark.parametrize("conclusion", ["success", "failure"])
async def test_deploy_dispatches_the_workflow_and_rolls_back_when_it_fails(
    tmp_path: Path, redis_url: str, conclusion: str
) -> None:
    from agents.deploy_stage import DeployerStage

    yml = (
        "stages: {review: false, test: false}\n"
        "deploy: {workflow: deploy.yml, environments: [staging]}\n"
    )
    files = {
        "README.md": "# demo\n",
        ".github/factory.yml": yml,
        ".github/workflows/deploy.yml": DEPLOY_WORKFLOW,
    }
    async with running_bot(tmp_path, redis_url, files=files) as bot:
        bot.start_worker({**scripted_agents(), Stage.DEPLOY: DeployerStage(poll_s=0.05)})
        issue = bot.fake.create_issue(bot.repo, "Add a greeting", "Print hello.", user="alice")
        bot.fake.label_issue(bot.repo, issue, "factory", user="alice")

        async def runs(count: int) -> bool:
            return len(bot.fake.workflow_runs(bot.repo)) >= count

        await bot.wait_for(lambda: runs(1), timeout=60, what="the deploy workflow run")
        deploy_run = bot.fake.workflow_runs(bot.repo)[0]
        feature = (await bot.features())[0]
        assert feature.state == "deployment"
        assert deploy_run.head_branch == feature.branch and deploy_run.head_sha == feature.head_sha
        assert deploy_run.inputs == {"environment": "staging"}  # only what the workflow declares
        bot.fake.complete_workflow_run(deploy_run.id, conclusion)

        if conclusion == "failure":
            await bot.wait_for(lambda: runs(2), timeout=30, what="the rollback run")
            rollback = bot.fake.workflow_runs(bot.repo)[1]
            assert rollback.head_branch == "main"
            assert rollback.inputs == {"environment": "staging", "rollback": "true"}
            bot.fake.complete_workflow_run(rollback.id, "success")

        feature = await bot.wait_for_state("completed", "failed", timeout=30)
        assert len(bot.fake.workflow_runs(bot.repo)) == (1 if conclusion == "success" else 2)

        def deploy_checks() -> list:
            runs = bot.fake.check_runs(bot.repo, feature.head_sha)
            return [r for r in runs if r.name.endswith("/ deploy")]

        async def check_concluded() -> bool:
            return all(r.conclusion for r in deploy_checks())

        # The database moves first; the check run follows a moment later.
        await bot.wait_for(check_concluded, timeout=15, what="the deploy check to conclude")
        assert len(deploy_checks()) == 1
        if conclusion == "success":
            assert feature.state == "completed"
            assert deploy_checks()[0].conclusion == "success"
        else:
            assert feature.state == "failed"
            assert "rolled back to `main`" in (feature.error or "")
            assert deploy_checks()[0].conclusion == "failure"
