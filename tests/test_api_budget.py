"""What one happy-path run costs on GitHub, by operation, on the fake GitHub.

The run goes plan -> implementation -> review -> tests -> deploy (scripted agents, the real
deploy stage). The worker's own reads are what this checks: the installation comes with the
delivery, the status comment and check runs are written by the ids the store remembers, the
configuration is read once per job and a missing organisation `.github` repository is asked
about once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from agents.deploy_stage import DeployerStage
from bot.contracts.lifecycle import Stage
from tests.e2e.harness import running_bot
from tests.e2e.scripted_agents import scripted_agents
from tests.fakegithub.state import RecordedRequest

pytestmark = pytest.mark.slow

FILES = {
    "README.md": "# demo\n",
    ".github/factory.yml": "deploy:\n  workflow: deploy.yml\n  environments: [staging]\n",
    ".github/workflows/deploy.yml": (
        "name: Deploy\non:\n  workflow_dispatch:\n    inputs:\n      environment: {}\n"
        "jobs:\n  deploy:\n    runs-on: ubuntu-latest\n    steps: [{run: ./deploy.sh}]\n"
    ),
}
# feature_start, then one step job per stage.
JOBS = 1 + len(Stage)


def calls(requests: list[RecordedRequest]) -> Counter[tuple[str, str]]:
    return Counter((r.method, r.route or r.path) for r in requests if ".git/" not in r.path)


async def test_a_happy_path_run_reads_each_thing_once(tmp_path: Path, redis_url: str) -> None:
    async with running_bot(tmp_path, redis_url, files=FILES) as bot:
        bot.start_worker({**scripted_agents(), Stage.DEPLOY: DeployerStage(poll_s=0.05)})
        issue = bot.fake.create_issue(bot.repo, "Add a greeting", "Print hello.", user="alice")
        bot.fake.label_issue(bot.repo, issue, "factory", user="alice")

        async def deploy_dispatched() -> bool:
            return bool(bot.fake.workflow_runs(bot.repo))

        await bot.wait_for(deploy_dispatched, timeout=90, what="the deploy workflow run")
        bot.fake.complete_workflow_run(bot.fake.workflow_runs(bot.repo)[0].id, "success")
        feature = await bot.wait_for_state("completed", "failed", timeout=60)
        assert feature.state == "completed", feature.error
        await asyncio.sleep(1.0)  # late writes would show up here
        requests = list(bot.fake.requests)

    made = calls(requests)
    # The installation comes with every delivery: it is never looked up.
    assert made[("GET", "/repos/{owner}/{repo}/installation")] == 0
    # Check runs are written by the ids the store remembers: a fresh head is not searched.
    assert made[("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs")] == 0
    assert made[("POST", "/repos/{owner}/{repo}/check-runs")] == 4  # one per stage check
    # The status comment is edited by its id: comments are listed only for the plan comment
    # (the scripted planner finds its own comment again).
    assert made[("GET", "/repos/{owner}/{repo}/issues/{number}/comments")] == 1
    status_edits = made[("PATCH", "/repos/{owner}/{repo}/issues/comments/{id}")]
    assert status_edits == len(Stage)  # one render as each step ends
    # The configuration is read once per job, from the default branch.
    config_reads = [r for r in requests if r.path.endswith("/contents/.github/factory.yml")]
    assert [r.path.split("/contents/")[0] for r in config_reads] == [f"/repos/{bot.repo}"] * JOBS
    # The organisation has no `.github` repository: asked once, remembered for a while.
    org = [r for r in requests if r.path == "/repos/octo-org/.github"]
    assert [r.status for r in org] == [404]
    assert not [r for r in requests if r.path.startswith("/repos/octo-org/.github/")]
    assert sum(made.values()) <= 42, made
