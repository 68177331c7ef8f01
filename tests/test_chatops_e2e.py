"""End to end: `/factory` ChatOps over the fake GitHub, with real Redis, SQLite and arq workers.

People comment on issues and pull requests of the fake GitHub; the signed webhook reaches the
real app, the command runs in a real worker with scripted stage agents, and the tests assert
what a person would see: the Prow-style replies (`@user:` and the quoted command), the 👀 then
🚀/😕 reactions, the status comment, the PR, and that nothing ran when it must not.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from arq.constants import default_queue_name, in_progress_key_prefix
from arq.jobs import Job
from sqlalchemy import select

from bot.contracts.commands import parse_commands
from bot.contracts.jobs import step_job_id
from bot.contracts.lifecycle import Stage
from bot.db import Feature, Repository, WebhookDelivery
from tests.e2e.harness import FACTORY_YML, Bot, running_bot
from tests.e2e.scripted_agents import (
    BlockingCoder,
    FailingOnceCoder,
    GuidedPlanner,
    ScriptedCoder,
    scripted_agents,
)
from tests.fakegithub import BOT_LOGIN
from tests.fakegithub.state import Comment

pytestmark = pytest.mark.slow

FINISHED = ("rocket", "confused")
HELP_TITLE = "**Agent Factory commands**"


@contextlib.asynccontextmanager
async def chatops_bot(tmp_path: Path, redis_url: str, **options: Any) -> AsyncIterator[Bot]:
    """The harness's bot, left only once its workers have nothing queued or running.

    Closing an arq worker cancels jobs still finishing (a reply's job stores its result just
    after the last reaction the tests wait for), and the cancelled job fails the close.
    """
    async with running_bot(tmp_path, redis_url, **options) as bot:
        yield bot
        await bot.fake.settle_webhooks()
        await bot.wait_for(lambda: queue_idle(bot), timeout=15, what="the workers to be idle")


async def queue_idle(bot: Bot) -> bool:
    redis = bot.services.redis
    if await redis.zcard(default_queue_name):
        return False
    async for _ in redis.scan_iter(match=f"{in_progress_key_prefix}*", count=1000):
        return False
    return True


def plan_and_code(coder: Any = None) -> dict[Stage, Any]:
    """A worker with only the planner and the coder: review, test and deploy have no agent."""
    return {Stage.PLAN: GuidedPlanner(), Stage.IMPLEMENT: coder or ScriptedCoder()}


@dataclass
class Answer:
    comment_id: int
    replies: list[Comment]
    reactions: list[str]

    @property
    def texts(self) -> list[str]:
        return [reply.body for reply in self.replies]


def reactions_on(bot: Bot, comment_id: int) -> list[str]:
    return [r.content for r in bot.fake.reactions(bot.repo, comment_id=comment_id)]


async def command(
    bot: Bot, number: int, body: str, *, user: str = "alice", timeout: float = 30
) -> Answer:
    """Comment `body` as `user` and wait until the bot has finished answering it (🚀 or 😕)."""
    comment_id = bot.fake.comment(bot.repo, number, body, user=user)

    async def finished() -> bool:
        return any(content in FINISHED for content in reactions_on(bot, comment_id))

    await bot.wait_for(finished, timeout=timeout, what=f"the bot to finish {body!r}")
    replies = [
        c
        for c in bot.fake.comments(bot.repo, number)
        if f"agent-factory:reply:{comment_id}:" in c.body
    ]
    return Answer(comment_id, replies, reactions_on(bot, comment_id))


def assert_prow_reply(reply: Comment, user: str, command_line: str) -> str:
    """`@user: message` then the command quoted in a collapsed block; returns the message."""
    body = reply.body
    assert reply.user.login == BOT_LOGIN
    assert f"\n@{user}: " in body, body
    assert "<details>\n<summary>In response to</summary>" in body, body
    assert f"\n> {command_line}\n" in body, body
    assert parse_commands(body) == [], "a reply must never read as a command"
    return body.split(f"@{user}: ", 1)[1].split("\n\n<details>", 1)[0]


def help_rows(text: str) -> dict[str, str]:
    """Command name -> its row in the help table of a reply."""
    rows = {}
    for line in text.splitlines():
        found = re.match(r"\| `/factory (\w+)", line)
        if found:
            rows[found.group(1)] = line
    return rows


def status_comment(bot: Bot, number: int, feature_id: int) -> Comment | None:
    found = [
        c
        for c in bot.fake.comments(bot.repo, number)
        if f"agent-factory:status:{feature_id}" in c.body
    ]
    assert len(found) <= 1
    return found[0] if found else None


async def features_of(bot: Bot, issue: int) -> list[Feature]:
    return [f for f in await bot.features() if f.issue_number == issue]


async def wait_for_feature(bot: Bot, issue: int, *states: str, timeout: float = 30) -> Feature:
    async def reached() -> bool:
        mine = await features_of(bot, issue)
        return bool(mine) and mine[-1].state in states

    await bot.wait_for(reached, timeout=timeout, what=f"issue #{issue} to reach {states}")
    return (await features_of(bot, issue))[-1]


async def wait_for_status(
    bot: Bot, issue: int, feature_id: int, text: str, timeout: float = 15
) -> None:
    async def says() -> bool:
        found = status_comment(bot, issue, feature_id)
        return found is not None and text in found.body

    await bot.wait_for(says, timeout=timeout, what=f"status comment to say {text!r}")


async def assert_bot_never_triggered_itself(bot: Bot, human_commands: int) -> None:
    """Every comment the bot posted came back as a webhook, and none of them queued a job."""
    await bot.fake.settle_webhooks()
    async with bot.db.session() as s:
        rows = (
            await s.scalars(select(WebhookDelivery).where(WebhookDelivery.event == "issue_comment"))
        ).all()
    own = [r for r in rows if r.sender == BOT_LOGIN]
    assert own, "the fake should deliver the bot's own comments back"
    assert all(r.status == "ignored" and not r.jobs for r in own), [(r.status, r.jobs) for r in own]
    human = [r for r in rows if r.sender != BOT_LOGIN]
    assert sum(len(r.jobs) for r in human) == human_commands


# ---------------------------------------------------------------------------- read-only commands


async def test_help_status_config_ask_and_bad_commands_reply_prow_style_without_looping(
    tmp_path: Path, redis_url: str
) -> None:
    async with chatops_bot(tmp_path, redis_url) as bot:
        issue = bot.fake.create_issue(bot.repo, "Add a greeting", "Print hello.", user="alice")
        bot.start_worker(plan_and_code())
        several = await command(
            bot, issue, "/factory help\nSome prose in between.\n/factory status\n/factory config"
        )
        assert several.reactions == ["eyes", "rocket"]
        assert len(several.replies) == 3, several.texts
        help_reply, status_reply, config_reply = several.replies
        assert help_reply.id < status_reply.id < config_reply.id, "replies follow command order"

        rows = help_rows(assert_prow_reply(help_reply, "alice", "/factory help"))
        assert {"help", "plan", "approve", "revise", "retry", "cancel", "ask", "config"} <= set(
            rows
        )
        for name in ("review", "test", "deploy"):
            assert "Not available in this repository yet" in rows[name], rows[name]
        for name in ("plan", "implement", "revise", "retry", "cancel"):
            assert "Not available" not in rows[name]

        assert "No run has started for this issue yet" in assert_prow_reply(
            status_reply, "alice", "/factory status"
        )
        config = assert_prow_reply(config_reply, "alice", "/factory config")
        assert "| `require_plan_approval` | `false` | default |" in config
        assert '| `deploy.workflow` | `"deploy.yml"` | `.github/factory.yml` |' in config

        gated = await command(bot, issue, "/factory review\n/factory test\n/factory deploy staging")
        assert gated.reactions == ["eyes", "confused"]
        lines = ["/factory review", "/factory test", "/factory deploy staging"]
        for reply, line, stage in zip(
            gated.replies, lines, ("review", "test", "deploy"), strict=True
        ):
            message = assert_prow_reply(reply, "alice", line)
            assert f"is not available in this repository yet: the {stage} stage" in message
            assert "Nothing was done." in message

        bad = await command(bot, issue, "/factory frobnicate\n/factory status now\n/factory ask")
        assert bad.reactions == ["eyes", "confused"]
        expected = (
            "I don't know the command `frobnicate`",
            "takes no arguments",
            "needs an argument",
        )
        lines = ["/factory frobnicate", "/factory status now", "/factory ask"]
        for reply, line, reason in zip(bad.replies, lines, expected, strict=True):
            message = assert_prow_reply(reply, "alice", line)
            assert reason in message and HELP_TITLE in message

        no_store = await command(bot, issue, "/factory ask Where is the greeting printed?")
        assert no_store.reactions == ["eyes", "rocket"]
        assert "the knowledge store is not enabled on this bot" in assert_prow_reply(
            no_store.replies[0], "alice", "/factory ask Where is the greeting printed?"
        )

        questions: list[tuple[str, str]] = []

        async def ask(repository: str, question: str) -> str:
            questions.append((repository, question))
            return "It is printed by `hello.py`, line 1."

        await bot.wait_for(lambda: queue_idle(bot), timeout=15, what="the worker to be idle")
        await bot.stop_workers()
        bot.start_worker(scripted_agents(), ask=ask)
        answered = await command(bot, issue, "/factory ask Where is the greeting printed?")
        assert answered.reactions == ["eyes", "rocket"]
        message = assert_prow_reply(
            answered.replies[0], "alice", "/factory ask Where is the greeting printed?"
        )
        assert message == "It is printed by `hello.py`, line 1."
        assert questions == [(bot.repo, "Where is the greeting printed?")]

        every_stage = await command(bot, issue, "/factory help")
        rows = help_rows(every_stage.texts[0])
        assert not any("Not available" in row for row in rows.values()), rows

        assert await bot.features() == [], "read-only and refused commands start nothing"
        await assert_bot_never_triggered_itself(bot, human_commands=6)
        # One reply per command line, nothing else: 3 + 3 + 3 + 1 + 1 + 1.
        assert (
            len([c for c in bot.fake.comments(bot.repo, issue) if c.user.login == BOT_LOGIN]) == 12
        )


# ---------------------------------------------------------------------------- running the work


async def test_plan_approve_implement_revise_retry_and_cancel_drive_runs(
    tmp_path: Path, redis_url: str
) -> None:
    files = {
        "README.md": "# demo\n",
        ".github/factory.yml": FACTORY_YML + "require_plan_approval: true\n",
    }
    async with chatops_bot(tmp_path, redis_url, files=files) as bot:
        fake, repo = bot.fake, bot.repo
        first = fake.create_issue(repo, "Add a greeting", "Print hello.", user="alice")
        flaky = fake.create_issue(repo, "Add a farewell", "Print bye.", user="alice")
        idle = fake.create_issue(repo, "Add a toast", "Print cheers.", user="alice")
        coder = FailingOnceCoder({flaky})
        bot.start_worker(plan_and_code(coder))

        # plan [guidance] starts a run, which waits for approval after the plan.
        started = await command(bot, first, "/factory plan focus on greetings")
        assert started.reactions == ["eyes", "rocket"]
        assert "Started a run" in assert_prow_reply(
            started.replies[0], "alice", "/factory plan focus on greetings"
        )
        feature = await wait_for_feature(bot, first, "awaiting_approval")
        await wait_for_status(bot, first, feature.id, "waiting for `/factory approve`")
        plan_marker = f"agent-factory:plan:{feature.id}"
        plans = [c for c in fake.comments(repo, first) if plan_marker in c.body]
        assert len(plans) == 1 and "Guidance followed: focus on greetings" in plans[0].body

        status = await command(bot, first, "/factory status")
        assert f"Run {feature.id} is **awaiting_approval**" in status.texts[0]

        # plan [guidance] while waiting: plans again with the new guidance, still waiting.
        replanned = await command(bot, first, "/factory plan say it in French")
        assert "Re-planning with your guidance." in replanned.texts[0]

        async def replanned_in_french() -> bool:
            plan = [c for c in fake.comments(repo, first) if plan_marker in c.body]
            return "Guidance followed: say it in French" in plan[0].body

        await bot.wait_for(
            replanned_in_french, timeout=20, what="the plan to follow the new guidance"
        )
        feature = await wait_for_feature(bot, first, "awaiting_approval")
        assert feature.attempt == 1 and not fake.pulls(repo), "no implementation before approval"

        # approve: on to implementation, which opens the PR; the run then completes.
        approved = await command(bot, first, "/factory approve")
        assert "Plan approved; implementation starts now." in approved.texts[0]
        feature = await wait_for_feature(bot, first, "completed")
        assert feature.pr_number is not None and feature.branch is not None and feature.round == 0
        branch = feature.branch
        assert fake.file_at(repo, branch, "hello.py") == "print('hello, round 0')\n"

        # revise [guidance]: a new implementation round on the same PR.
        revised = await command(bot, first, "/factory revise make it louder")
        assert "Implementation runs again." in revised.texts[0]

        async def second_round_done() -> bool:
            mine = (await features_of(bot, first))[-1]
            return mine.round == 1 and mine.state == "completed"

        await bot.wait_for(second_round_done, timeout=30, what="the revision round to complete")
        feature = (await features_of(bot, first))[-1]
        assert len(await features_of(bot, first)) == 1 and feature.guidance == "make it louder"
        assert [p.number for p in fake.pulls(repo)] == [feature.pr_number]
        assert feature.branch == branch
        assert fake.file_at(repo, branch, "hello.py") == "print('hello, round 1')\n"

        # implement: starts a run; implement again approves the plan; the coder fails once.
        implement = await command(bot, flaky, "/factory implement")
        assert "Started a run" in implement.texts[0]
        await wait_for_feature(bot, flaky, "awaiting_approval")
        go = await command(bot, flaky, "/factory implement")
        assert "Plan approved" in go.texts[0]
        failed = await wait_for_feature(bot, flaky, "failed")
        assert coder.failed == [flaky] and "Implementation failed" in (failed.error or "")
        await wait_for_status(bot, flaky, failed.id, "failed")

        # retry: the failed stage (implementation, not the plan) runs again and succeeds.
        retried = await command(bot, flaky, "/factory retry")
        assert "Implementation runs again." in retried.texts[0]
        done = await wait_for_feature(bot, flaky, "completed")
        moves = [
            (a.from_state, a.to_state, a.cause)
            for a in await bot.audit(done.id)
            if a.kind == "feature.transition"
        ]
        assert ("failed", "implementation", "/factory retry") in moves
        assert not any(to == "planning" for _, to, _ in moves), "retry must not re-plan"
        # The run's cost counts the failed attempt and the retry: plan, failed try, retry.
        assert done.cost_usd == pytest.approx(0.01 + 0.05 + 0.02)
        assert done.tokens == 1000 + 5000 + 2000

        # cancel: stops a waiting run; a second cancel has nothing left to stop.
        await command(bot, idle, "/factory plan")
        waiting = await wait_for_feature(bot, idle, "awaiting_approval")
        cancelled = await command(bot, idle, "/factory cancel\n/factory cancel")
        assert cancelled.reactions == ["eyes", "rocket"]
        assert f"Run {waiting.id} is cancelled." in cancelled.texts[0]
        assert "There is no run in progress to cancel." in cancelled.texts[1]
        assert (await features_of(bot, idle))[-1].state == "cancelled"
        await wait_for_status(bot, idle, waiting.id, "cancelled")


# ---------------------------------------------------------------------------- who may


async def test_outsiders_and_bots_start_nothing_while_a_maintainer_starts_a_run(
    tmp_path: Path, redis_url: str
) -> None:
    async with chatops_bot(tmp_path, redis_url) as bot:
        fake, repo = bot.fake, bot.repo
        fake.set_permission(repo, "mallory", "read")
        fake.set_permission(repo, "eve", "none")
        issue = fake.create_issue(repo, "Add a greeting", "Print hello.", user="mallory")
        bot.start_worker(plan_and_code())

        reader = await command(bot, issue, "/factory implement", user="mallory")
        assert reader.reactions == ["eyes", "confused"]
        assert assert_prow_reply(reader.replies[0], "mallory", "/factory implement") == (
            "Sorry, `/factory implement` needs write access to this repository, and your access "
            "is `read`. Someone with write access can do it for you."
        )
        stranger = await command(bot, issue, "/factory implement", user="eve")
        assert stranger.reactions == ["eyes", "confused"]
        assert "needs write access to this repository, and you have no access" in assert_prow_reply(
            stranger.replies[0], "eve", "/factory implement"
        )
        # Permission comes before availability: an outsider learns nothing about the stages.
        deploy = await command(bot, issue, "/factory deploy", user="mallory")
        assert "`/factory deploy` needs write access" in deploy.texts[0]
        # Read-only commands stay open to anyone who can comment.
        status = await command(bot, issue, "/factory status", user="mallory")
        assert status.reactions == ["eyes", "rocket"]
        assert "No run has started" in status.texts[0]

        fake.label_issue(repo, issue, "factory", user="mallory")

        async def label_refused() -> bool:
            return any(
                "Adding the `factory` label needs write access" in c.body
                for c in fake.comments(repo, issue)
            )

        await bot.wait_for(label_refused, timeout=15, what="the label to be refused")
        fake.unlabel_issue(repo, issue, "factory", user="mallory")

        bot_comment = fake.comment(repo, issue, "/factory implement", user="dependabot[bot]")
        await fake.settle_webhooks()
        async with bot.db.session() as s:
            row = await s.scalar(
                select(WebhookDelivery).where(WebhookDelivery.sender == "dependabot[bot]")
            )
        assert row is not None and row.status == "ignored" and not row.jobs
        assert await bot.features() == []

        maintainer = await command(bot, issue, "/factory implement")
        assert maintainer.reactions == ["eyes", "rocket"]
        assert "Started a run" in maintainer.texts[0]
        await wait_for_feature(bot, issue, "completed")
        assert len(fake.pulls(repo)) == 1

        # The bot's comment never got a reaction or a reply, even after everything else ran.
        assert reactions_on(bot, bot_comment) == []
        assert not [
            c for c in fake.comments(repo, issue) if f"agent-factory:reply:{bot_comment}:" in c.body
        ]
        assert [f.triggered_by for f in await bot.features()] == ["alice"]


# ---------------------------------------------------------------------------- configuration


def config_problem_comments(bot: Bot, issue: int) -> list[Comment]:
    return [
        c
        for c in bot.fake.comments(bot.repo, issue)
        if "Agent Factory configuration problem" in c.body
    ]


async def test_an_invalid_config_gets_one_comment_naming_the_field_and_nothing_runs_until_fixed(
    tmp_path: Path, redis_url: str
) -> None:
    wrong_type = FACTORY_YML + "budgets:\n  max_usd: lots\n"
    async with chatops_bot(
        tmp_path, redis_url, files={"README.md": "# demo\n", ".github/factory.yml": wrong_type}
    ) as bot:
        fake, repo = bot.fake, bot.repo
        typed = fake.create_issue(repo, "Add a greeting", "Print hello.", user="alice")
        unknown = fake.create_issue(repo, "Add a farewell", "Print bye.", user="alice")
        bot.start_worker(plan_and_code())

        fake.label_issue(repo, typed, "factory")
        await bot.wait_for(
            lambda: _true(config_problem_comments(bot, typed)),
            timeout=15,
            what="the config problem comment",
        )
        refused = await command(bot, typed, "/factory plan")
        assert refused.reactions == ["eyes", "confused"]
        fake.unlabel_issue(repo, typed, "factory")
        fake.label_issue(repo, typed, "factory")
        await fake.settle_webhooks()
        await asyncio.sleep(1.0)  # time for a wrongly started run to show up
        [problem] = config_problem_comments(bot, typed)
        assert "| `budgets.max_usd` |" in problem.body and '`"lots"`' in problem.body
        assert "nothing runs in this repository until it is fixed" in problem.body
        assert await bot.features() == []

        fake.push_files(
            repo, "main", {".github/factory.yml": FACTORY_YML + "budgets:\n  max_dollars: 3\n"}
        )
        fake.label_issue(repo, unknown, "factory")
        await bot.wait_for(
            lambda: _true(config_problem_comments(bot, unknown)),
            timeout=15,
            what="the config problem comment",
        )
        await command(bot, unknown, "/factory status")
        [problem] = config_problem_comments(bot, unknown)
        assert "| `budgets.max_dollars` | unknown setting" in problem.body
        assert await bot.features() == []

        fake.push_files(
            repo, "main", {".github/factory.yml": FACTORY_YML + "budgets:\n  max_usd: 3\n"}
        )
        fake.unlabel_issue(repo, unknown, "factory")
        fake.label_issue(repo, unknown, "factory")
        feature = await wait_for_feature(bot, unknown, "completed")
        assert feature.triggered_by == "alice"
        assert len(config_problem_comments(bot, unknown)) == 1
        config = await command(bot, unknown, "/factory config")
        assert "| `budgets.max_usd` | `3.0` | `.github/factory.yml` |" in config.texts[0]


async def _true(value: object) -> bool:
    return bool(value)


def config_comments(bot: Bot, issue: int) -> list[Comment]:
    """Every comment about the config on `issue`, whatever it says now."""
    return [c for c in bot.fake.comments(bot.repo, issue) if "agent-factory:config-error" in c.body]


def comment_edits(bot: Bot, comment_id: int) -> int:
    return sum(
        1
        for r in bot.fake.requests
        if r.method == "PATCH" and r.path.endswith(f"/issues/comments/{comment_id}")
    )


async def test_once_the_config_is_fixed_the_config_problem_comment_says_so_and_the_run_starts(
    tmp_path: Path, redis_url: str
) -> None:
    wrong_type = FACTORY_YML + "budgets:\n  max_usd: lots\n"
    async with chatops_bot(
        tmp_path, redis_url, files={"README.md": "# demo\n", ".github/factory.yml": wrong_type}
    ) as bot:
        fake, repo = bot.fake, bot.repo
        by_command = fake.create_issue(repo, "Add a greeting", "Print hello.", user="alice")
        by_label = fake.create_issue(repo, "Add a farewell", "Print bye.", user="alice")
        never_broken = fake.create_issue(repo, "Add a wave", "Print wave.", user="alice")
        bot.start_worker(plan_and_code())

        refused = await command(bot, by_command, "/factory plan")
        assert refused.reactions == ["eyes", "confused"] and refused.replies == []
        fake.label_issue(repo, by_label, "factory")
        await bot.wait_for(
            lambda: _true(config_comments(bot, by_label)),
            timeout=15,
            what="the config problem comment on the labelled issue",
        )
        [problem] = config_comments(bot, by_command)
        assert problem.user.login == BOT_LOGIN
        assert problem.body.splitlines()[1] == "### Agent Factory configuration problem"
        [labelled_problem] = config_comments(bot, by_label)
        assert await bot.features() == []

        fake.push_files(
            repo, "main", {".github/factory.yml": FACTORY_YML + "budgets:\n  max_usd: 3\n"}
        )
        started = await command(bot, by_command, "/factory plan")
        assert started.reactions == ["eyes", "rocket"]
        assert "Started a run" in started.texts[0]
        [fixed] = config_comments(bot, by_command)
        assert fixed.id == problem.id, "the same comment is edited, not a new one posted"
        heading, line = fixed.body.splitlines()[2], fixed.body.splitlines()[4]
        assert heading == "### ✅ Agent Factory configuration fixed"
        assert "`.github/factory.yml` on the default branch is valid now" in line
        collapsed = fixed.body.split("<details>", 1)[1]
        assert "### Agent Factory configuration problem" in collapsed
        assert "| `budgets.max_usd` |" in collapsed and '`"lots"`' in collapsed
        assert collapsed.rstrip().endswith("</details>")
        assert "### Agent Factory configuration problem" not in fixed.body.split("<details>")[0]
        await wait_for_feature(bot, by_command, "completed")

        fake.unlabel_issue(repo, by_label, "factory")
        fake.label_issue(repo, by_label, "factory")
        await wait_for_feature(bot, by_label, "completed")
        [labelled_fixed] = config_comments(bot, by_label)
        assert labelled_fixed.id == labelled_problem.id
        assert "### ✅ Agent Factory configuration fixed" in labelled_fixed.body

        # Later commands leave the resolved comment alone, and an issue that never had a
        # config problem gets no config comment at all.
        await command(bot, by_command, "/factory status")
        await command(bot, never_broken, "/factory status")
        assert [c.body for c in config_comments(bot, by_command)] == [fixed.body]
        assert comment_edits(bot, problem.id) == 1
        assert comment_edits(bot, labelled_problem.id) == 1
        assert config_comments(bot, never_broken) == []


async def test_a_config_change_on_the_pr_branch_does_not_change_that_prs_run(
    tmp_path: Path, redis_url: str
) -> None:
    changed = FACTORY_YML + "require_plan_approval: true\ntrigger_label: go\n"
    async with chatops_bot(tmp_path, redis_url) as bot:
        fake, repo = bot.fake, bot.repo
        issue = fake.create_issue(repo, "Add a greeting", "Print hello.", user="alice")
        other = fake.create_issue(repo, "Add a farewell", "Print bye.", user="alice")
        bot.start_worker(plan_and_code())
        fake.label_issue(repo, issue, "factory")
        first = await wait_for_feature(bot, issue, "completed")
        assert first.pr_number is not None and first.branch is not None
        pr = first.pr_number

        # Someone edits the bot's own PR to demand plan approval and another trigger label,
        # then asks for a new plan there.
        fake.push_files(
            repo, first.branch, {".github/factory.yml": changed}, message="Tune the bot"
        )
        shown = await command(bot, pr, "/factory config")
        assert "| `require_plan_approval` | `false` | default |" in shown.texts[0]
        replan = await command(bot, pr, "/factory plan")
        assert (
            f"Started a run; the status comment on #{issue} follows its progress."
            in replan.texts[0]
        )

        async def second_run_done() -> bool:
            runs = await features_of(bot, issue)
            return len(runs) == 2 and runs[-1].state in ("completed", "awaiting_approval", "failed")

        await bot.wait_for(second_run_done, timeout=30, what="the second run on the issue to end")
        second = (await features_of(bot, issue))[-1]
        assert second.state == "completed", "the PR branch's factory.yml must not apply"
        assert second.pr_number == pr and [p.number for p in fake.pulls(repo)] == [pr]
        assert [f.issue_number for f in await bot.features()] == [issue, issue]
        fake.label_issue(repo, other, "go")
        await fake.settle_webhooks()
        await asyncio.sleep(1.0)  # time for a wrongly started run to show up
        assert await features_of(bot, other) == [], "`go` is not the trigger label on main"
        fake.unlabel_issue(repo, other, "go")

        # The same change on the default branch does apply: the next run waits for approval,
        # and `go` becomes the label that starts runs.
        fake.push_files(repo, "main", {".github/factory.yml": changed}, message="Tune the bot")
        await wait_for_trigger_label(bot, "go")
        await command(bot, pr, "/factory plan")
        third = await wait_for_feature(bot, issue, "awaiting_approval")
        assert third.id != second.id
        approved = await command(bot, pr, "/factory approve")
        assert "Plan approved" in approved.texts[0]
        await wait_for_feature(bot, issue, "completed")
        fake.label_issue(repo, other, "go")
        await wait_for_feature(bot, other, "awaiting_approval")


async def wait_for_trigger_label(bot: Bot, label: str) -> None:
    """Until the label ingress routes on (kept in the database) is `label`."""

    async def known() -> bool:
        async with bot.db.session() as s:
            return (
                await s.scalar(
                    select(Repository.trigger_label).where(Repository.full_name == bot.repo)
                )
                == label
            )

    await bot.wait_for(known, timeout=15, what=f"the trigger label to become {label!r}")


# ---------------------------------------------------------------------------- cancel


async def test_cancel_during_implementation_stops_the_run_within_five_seconds(
    tmp_path: Path, redis_url: str
) -> None:
    async with chatops_bot(tmp_path, redis_url) as bot:
        fake, repo = bot.fake, bot.repo
        issue = fake.create_issue(repo, "Add a greeting", "Print hello.", user="alice")
        coder = BlockingCoder(hold_s=60)
        bot.start_worker(plan_and_code(coder))
        fake.label_issue(repo, issue, "factory")
        feature = await wait_for_feature(bot, issue, "implementation")
        await bot.wait_for(lambda: _true(coder.started_at), timeout=15, what="the coder to start")
        await wait_for_status(bot, issue, feature.id, "**implementing**")

        posted = time.monotonic()
        comment_id = fake.comment(repo, issue, "/factory cancel")

        async def stopped() -> bool:
            mine = (await features_of(bot, issue))[-1]
            status = status_comment(bot, issue, feature.id)
            return (
                mine.state == "cancelled"
                and status is not None
                and "This run was cancelled" in status.body
            )

        await bot.wait_for(stopped, timeout=10, what="the run to be cancelled")
        latency = time.monotonic() - posted
        print(f"\ncancel latency: {latency:.2f}s (comment posted -> cancelled and status says so)")
        assert latency < 5, latency

        # The blocked step was aborted, not left to finish in the background.
        await bot.wait_for(
            lambda: _true(coder.cancelled_at), timeout=5, what="the coder to be cancelled"
        )
        assert coder.cancelled_at is not None and coder.cancelled_at - posted < 5
        job = Job(step_job_id(feature.id, Stage.IMPLEMENT, 0, 0), bot.services.redis)
        info = await job.result_info()
        assert (
            info is not None
            and not info.success
            and isinstance(info.result, asyncio.CancelledError)
        )
        await bot.wait_for(
            lambda: _true("rocket" in reactions_on(bot, comment_id)),
            timeout=5,
            what="the 🚀 reaction",
        )
        assert f"Run {feature.id} is cancelled." in "".join(
            c.body
            for c in fake.comments(repo, issue)
            if f"agent-factory:reply:{comment_id}:" in c.body
        )
        status = status_comment(bot, issue, feature.id)
        assert status is not None and "🚫" in status.body
        assert not fake.pulls(repo), "a cancelled implementation opens no PR"


async def test_commands_narrowed_to_a_team_follow_team_membership(
    tmp_path: Path, redis_url: str
) -> None:
    yml = FACTORY_YML + "permissions:\n  restrict_to:\n    implement: [octo-org/core]\n"
    files = {"README.md": "# demo\n", ".github/factory.yml": yml}
    async with chatops_bot(tmp_path, redis_url, files=files) as bot:
        bot.start_worker(plan_and_code())
        for login in ("bob", "carol"):
            bot.fake.set_permission(bot.repo, login, "write")
        bot.fake.add_team_member("octo-org", "core", "carol")
        issue = bot.fake.create_issue(bot.repo, "Add a greeting", "Print hello.", user="alice")

        refused = await command(bot, issue, "/factory implement", user="bob")
        message = assert_prow_reply(refused.replies[0], "bob", "/factory implement")
        assert "permissions.restrict_to" in message
        assert "confused" in refused.reactions
        assert await bot.features() == []

        allowed = await command(bot, issue, "/factory implement", user="carol")
        assert "rocket" in allowed.reactions
        assert len(await bot.features()) == 1
