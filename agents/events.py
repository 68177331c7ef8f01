"""What the bot does for each routed webhook: one method per job that ingress enqueues.

Every reply is posted with a hidden marker derived from the delivery or comment it answers,
so a job that runs twice (crash, redelivery) edits its reply instead of posting a second one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from agents.checks import parse_external_id
from bot.contracts.commands import (
    CommandError,
    ParsedCommand,
    format_reply,
    help_text,
    parse_commands,
    stage_unavailable_message,
)
from agents.coordinator import Coordinator, RunContext
from bot.contracts.lifecycle import Decision, Stage, next_enabled, stage_for_check
from agents.review_feedback import review_feedback
from agents.runtime import (
    CONFIG_ERROR_MARKER,
    CONFIG_PATH,
    ConfigInvalid,
    Runtime,
    config_fixed_comment,
)
from bot.contracts.lifecycle import FeatureState
from bot.db import Database, Feature, Installation, Repository, Task
from bot.github.errors import scrub
from bot.github.models import RepoInfo
from bot.permissions import LABEL, PermissionChecker, is_bot
from bot.contracts.config_load import ConfigResult, explain

log = logging.getLogger(__name__)

Asker = Callable[[str, str], Awaitable[str]]  # (repository, question) -> markdown answer
Learner = Callable[..., Awaitable[None]]


# The command whose permission rule an event re-running a stage's check must pass
# (`permissions.restrict_to` in .github/factory.yml narrows these as it narrows the commands).
STAGE_COMMANDS: dict[Stage, str] = {
    Stage.PLAN: "plan",
    Stage.IMPLEMENT: "implement",
    Stage.REVIEW: "review",
    Stage.TEST: "test",
    Stage.DEPLOY: "deploy",
}


def _marker(kind: str, key: object) -> str:
    return f"<!-- agent-factory:{kind}:{key} -->"


def _where(feature: Feature) -> tuple[FeatureState, int, int]:
    """Where a run was when it was read: a transition applies only if it is still there."""
    return FeatureState(feature.state), feature.round, feature.attempt


@dataclass
class EventHandlers:
    coordinator: Coordinator
    runtime: Runtime
    permissions: PermissionChecker
    db: Database
    ask: Asker | None = None
    learn: Learner | None = None
    refresh_knowledge: Callable[..., Awaitable[None]] | None = None

    # ------------------------------------------------------------------ label

    async def feature_start(
        self,
        *,
        installation_id: int,
        repo: str,
        issue_number: int,
        sender: str,
        sender_type: str,
        delivery_id: str,
        **_: Any,
    ) -> str:
        gh = await self.runtime.repo(installation_id, repo)
        await gh.react_to_issue(issue_number, "eyes")
        try:
            config = await self._load_config(installation_id, gh)
        except ConfigInvalid as exc:
            await gh.upsert_marked_comment(issue_number, CONFIG_ERROR_MARKER, exc.comment())
            return "config-invalid"
        await self._mark_config_fixed(gh, issue_number)
        decision = await self.permissions.decide(
            repo, sender, sender_type, LABEL, config.config, team_membership=gh.is_team_member
        )
        if not decision.allowed:
            if decision.notify:
                await gh.upsert_marked_comment(
                    issue_number, _marker("refused", delivery_id), f"@{sender}: {decision.reason}"
                )
            return "refused"
        return await self._start(
            installation_id=installation_id,
            repo=repo,
            issue_number=issue_number,
            sender=sender,
            delivery_id=delivery_id,
            gh=gh,
            cause="label",
        )

    async def _start(
        self,
        *,
        installation_id: int,
        repo: str,
        issue_number: int,
        sender: str,
        delivery_id: str,
        gh: Any,
        cause: str,
        guidance: str | None = None,
    ) -> str:
        feature, mine = await self.coordinator.start_feature(
            installation_id=installation_id,
            repository=repo,
            issue_number=issue_number,
            sender=sender,
            delivery_id=delivery_id,
            guidance=guidance,
            cause=cause,
        )
        if not mine:
            await gh.upsert_marked_comment(
                issue_number,
                _marker("already-running", delivery_id),
                f"@{sender}: a run for this issue is already in progress "
                f"(state: **{feature.state}**); see the status comment. "
                "Comment `/factory cancel` to stop it first.",
            )
            return "already-running"
        run = await self.runtime.open_repo(installation_id, repo)
        await self.coordinator.begin(feature.id, run)
        return f"feature {feature.id}"

    # ------------------------------------------------------------------ ChatOps

    async def command_received(
        self,
        *,
        installation_id: int,
        repo: str,
        issue_number: int,
        comment_id: int,
        body: str,
        sender: str,
        sender_type: str,
        delivery_id: str,
        comment_kind: str = "issue",
        is_pull_request: bool = False,
        **_: Any,
    ) -> str:
        commands = parse_commands(body)
        if not commands:
            return "no command"
        if is_bot(sender, sender_type):
            # Not even a reaction: bots answering bots is how loops start.
            return "bot"
        gh = await self.runtime.repo(installation_id, repo)
        react = (
            gh.react_to_review_comment if comment_kind == "review" else gh.react_to_issue_comment
        )
        await react(comment_id, "eyes")
        try:
            config_result = await self._load_config(installation_id, gh)
        except ConfigInvalid as exc:
            await gh.upsert_marked_comment(issue_number, CONFIG_ERROR_MARKER, exc.comment())
            await react(comment_id, "confused")
            return "config-invalid"
        await self._mark_config_fixed(gh, issue_number)
        config = config_result.config
        available = {s.value for s in self.runtime.enabled(config)}
        ok = True
        for index, command in enumerate(commands):
            marker = _marker("reply", f"{comment_id}:{index}")
            if isinstance(command, CommandError):
                ok = False
                message = command.reply_text(available)
                await gh.upsert_marked_comment(
                    issue_number,
                    marker,
                    f"{marker}\n{format_reply(sender, command.raw_line, message)}",
                )
                continue
            decision = await self.permissions.decide(
                repo, sender, sender_type, command.name, config, team_membership=gh.is_team_member
            )
            if not decision.allowed:
                if not decision.notify:
                    return "bot"
                ok = False
                message = decision.reason
            elif not command.spec.available(available):
                ok = False
                message = stage_unavailable_message(command)
            else:
                try:
                    message = await self._run(
                        command,
                        installation_id=installation_id,
                        repo=repo,
                        number=issue_number,
                        sender=sender,
                        delivery_id=f"{delivery_id}:{index}",
                        gh=gh,
                        config_result=config_result,
                        available=available,
                    )
                except Exception as exc:  # the user must hear about it; the log has the rest
                    log.exception("command %s failed", command.name)
                    ok = False
                    message = f"that failed: {scrub(f'{type(exc).__name__}: {exc}')}"
            await gh.upsert_marked_comment(
                issue_number, marker, f"{marker}\n{format_reply(sender, command.raw_line, message)}"
            )
        await react(comment_id, "rocket" if ok else "confused")
        return "ok" if ok else "failed"

    async def _load_config(self, installation_id: int, gh: Any) -> ConfigResult:
        loaded = await self.runtime.load_repo_and_config(installation_id, gh)
        await self._remember_trigger_label(
            installation_id, loaded.info, loaded.result.config.trigger_label
        )
        return loaded.result

    async def _mark_config_fixed(self, gh: Any, issue_number: int) -> None:
        """Say so on this issue's config-error comment, if it has one, now that the config loads.

        Edited rather than deleted, so the issue still shows what was wrong.
        """
        problem = await gh.find_marked_comment(issue_number, CONFIG_ERROR_MARKER)
        if problem is None:
            return
        fixed = config_fixed_comment(problem.body)
        if fixed is not None:
            await gh.edit_comment(problem.id, fixed)

    async def _remember_trigger_label(
        self, installation_id: int, info: RepoInfo, label: str
    ) -> None:
        """Keep ingress's copy of the trigger label in step with the default branch's config.

        Ingress routes labels without calling GitHub, so it reads the label from the database.
        """
        try:
            async with self.db.session() as s:
                row = await s.get(Repository, info.id) or await s.scalar(
                    select(Repository).where(Repository.full_name == info.full_name)
                )
                if row is None:
                    known = await s.get(Installation, installation_id) is not None
                    row = Repository(
                        id=info.id,
                        full_name=info.full_name,
                        installation_id=installation_id if known else None,
                    )
                    s.add(row)
                # Unchanged values write nothing: the session only flushes real changes.
                row.trigger_label = label
                row.default_branch = info.default_branch
        except IntegrityError:
            # Another job added the repository at the same moment, from the same config.
            log.debug("%s was recorded concurrently", info.full_name)

    async def _issue_of(self, repo: str, number: int) -> int:
        """The issue a pull request of ours implements; any other number is its own issue."""
        async with self.db.session() as s:
            issue = await s.scalar(
                select(Feature.issue_number)
                .where(Feature.repository == repo, Feature.pr_number == number)
                .order_by(Feature.id.desc())
                .limit(1)
            )
        return number if issue is None else int(issue)

    async def _run_for_pull_request(self, repo: str, pr_number: int) -> Feature | None:
        """The run a pull request of ours belongs to now.

        A new run on the same issue reuses the issue's branch and so its pull request, but
        records it only when its implementation step ends; until then the newest run on the
        issue owns the PR, unless it has already opened a different one.
        """
        async with self.db.session() as s:
            opener = await s.scalar(
                select(Feature)
                .where(Feature.repository == repo, Feature.pr_number == pr_number)
                .order_by(Feature.id.desc())
                .limit(1)
            )
            if opener is None:
                return None
            newest = await s.scalar(
                select(Feature)
                .where(Feature.repository == repo, Feature.issue_number == opener.issue_number)
                .order_by(Feature.id.desc())
                .limit(1)
            )
        if newest is not None and newest.pr_number in (None, pr_number):
            return newest
        return opener

    async def _feature_for(self, repo: str, number: int, *, active_only: bool) -> Feature | None:
        async with self.db.session() as s:
            query = select(Feature).where(
                Feature.repository == repo,
                or_(Feature.issue_number == number, Feature.pr_number == number),
            )
            if active_only:
                query = query.where(Feature.active_key.is_not(None))
            return await s.scalar(query.order_by(Feature.id.desc()).limit(1))

    async def _run(
        self,
        command: ParsedCommand,
        *,
        installation_id: int,
        repo: str,
        number: int,
        sender: str,
        delivery_id: str,
        gh: Any,
        config_result: Any,
        available: set[str],
    ) -> str:
        name, args = command.name, command.args.strip()
        coordinator = self.coordinator
        if name == "help":
            return help_text(available_stages=available)
        if name == "config":
            return explain(config_result)
        if name == "ask":
            if self.ask is None:
                return "I cannot answer questions here: the knowledge store is not enabled on this bot."
            return await self.ask(repo, args)
        # On the bot's pull request the work belongs to the issue it implements; a new run
        # for that issue has not recorded the pull request yet.
        issue_number = await self._issue_of(repo, number)
        active = await self._feature_for(repo, issue_number, active_only=True)
        latest = active or await self._feature_for(repo, issue_number, active_only=False)
        if name == "status":
            if latest is None:
                return "No run has started for this issue yet. Add the trigger label or comment `/factory plan`."
            return (
                f"Run {latest.id} is **{latest.state}** (round {latest.round + 1}); "
                f"LLM cost so far ${latest.cost_usd:.2f}. The status comment has the details."
            )
        if name == "cancel":
            if active is None:
                return "There is no run in progress to cancel."
            await coordinator.cancel(active.id, actor=sender, cause="/factory cancel")
            return f"Run {active.id} is cancelled."
        if name in ("plan", "implement", "approve"):
            if active is not None:
                state = FeatureState(active.state)
                if name == "approve" or (
                    name == "implement" and state is FeatureState.AWAITING_APPROVAL
                ):
                    if state is not FeatureState.AWAITING_APPROVAL:
                        return f"There is no plan waiting for approval (the run is **{state}**)."
                    run = await self.runtime.open_repo(installation_id, repo)
                    nxt = next_enabled(Stage.PLAN, run.enabled)
                    await coordinator.transition(
                        active.id,
                        expect=(FeatureState.AWAITING_APPROVAL, active.round, active.attempt),
                        decision=Decision(nxt.state, nxt, active.round, f"approved by {sender}")
                        if nxt
                        else Decision(FeatureState.COMPLETED, None, active.round, "approved"),
                        cause="/factory approve",
                        actor=sender,
                    )
                    await coordinator.refresh_status(active.id, run)
                    return "Plan approved; implementation starts now."
                if name == "plan" and state in (
                    FeatureState.AWAITING_APPROVAL,
                    FeatureState.AWAITING_CLARIFICATION,
                ):
                    await coordinator.rerun(
                        active.id,
                        Stage.PLAN,
                        actor=sender,
                        cause="/factory plan",
                        guidance=args or None,
                    )
                    run = await self.runtime.open_repo(installation_id, repo)
                    await coordinator.refresh_status(active.id, run)
                    return "Re-planning" + (" with your guidance." if args else ".")
                return (
                    f"A run is already in progress (**{state}**). "
                    "Comment `/factory cancel` first if you want to start over."
                )
            if name == "approve":
                return "There is no plan waiting for approval."
            result = await self._start(
                installation_id=installation_id,
                repo=repo,
                issue_number=issue_number,
                sender=sender,
                delivery_id=delivery_id,
                gh=gh,
                cause=f"/factory {name}",
                guidance=args or None,
            )
            if not result.startswith("feature"):
                return result
            where = "" if issue_number == number else f" on #{issue_number}"
            return f"Started a run; the status comment{where} follows its progress."
        if name in ("retry", "revise", "review", "test", "deploy"):
            if latest is None:
                return "No run exists for this issue yet. Add the trigger label or comment `/factory plan`."
            if name == "revise" and latest.pr_number is None:
                return "There is no pull request to revise yet."
            if name == "retry":
                if latest.state not in (FeatureState.FAILED.value, FeatureState.CANCELLED.value):
                    return f"The run is **{latest.state}**; only a failed or cancelled run can be retried."
                stage = await self._failed_stage(latest.id)
            else:
                stage = {
                    "revise": Stage.IMPLEMENT,
                    "review": Stage.REVIEW,
                    "test": Stage.TEST,
                    "deploy": Stage.DEPLOY,
                }[name]
            started = await coordinator.rerun(
                latest.id,
                stage,
                actor=sender,
                cause=f"/factory {name}",
                next_round=name == "revise",
                guidance=args or None if name == "revise" else None,
            )
            if not started:
                return "Another run is active on this issue; cancel it first."
            run = await self.runtime.open_repo(installation_id, repo)
            await coordinator.refresh_status(latest.id, run)
            if name == "deploy" and args:
                # The run has nowhere to carry a per-command environment yet; say so.
                return (
                    f"{stage.title} runs again, to the configured default environment: "
                    f"choosing `{args}` in the command is not supported yet."
                )
            return f"{stage.title} runs again."
        raise ValueError(f"no handler for command {name}")

    async def _failed_stage(self, feature_id: int) -> Stage:
        async with self.db.session() as s:
            tasks = (
                await s.scalars(select(Task).where(Task.feature_id == feature_id).order_by(Task.id))
            ).all()
        for task in reversed(tasks):
            if task.outcome in (None, "failed") or task.state in ("failed", "cancelled", "running"):
                return Stage(task.kind)
        return Stage.PLAN

    # ------------------------------------------------------------------ pull requests & checks

    async def _may_steer(
        self,
        *,
        installation_id: int,
        repo: str,
        gh: Any,
        actor: str | None,
        actor_type: str | None,
        commands: tuple[str, ...],
        subject: str,
        what: str,
    ) -> bool:
        """Whether ``actor`` may do what this event would do: the rule for ``commands``.

        The gate every event that starts, resumes or steers work passes first, with the
        permission rule of the command it amounts to (see bot/permissions.py). A refusal posts
        nothing: answering every drive-by review or re-run would be noise, and a way to make
        the bot spam. It is logged with its reason instead; the event's text never is.
        """
        if not actor:
            log.info("%s: %s by an unknown sender not acted on", repo, what)
            return False
        try:
            config = (await self._load_config(installation_id, gh)).config
        except ConfigInvalid:
            log.info("%s: %s by %s not acted on: %s is invalid", repo, what, actor, CONFIG_PATH)
            return False
        for command in commands:
            decision = await self.permissions.decide(
                repo,
                actor,
                actor_type or "User",
                command,
                config,
                team_membership=gh.is_team_member,
                subject=subject,
            )
            if not decision.allowed:
                log.info("%s: %s by %s not acted on: %s", repo, what, actor, decision.reason)
                return False
        return True

    async def review_submitted(
        self,
        *,
        installation_id: int,
        repo: str,
        pr_number: int,
        state: str,
        body: str | None,
        reviewer: str,
        review_id: int | None = None,
        reviewer_type: str = "User",
        delivery_id: str = "",
        **_: Any,
    ) -> str:
        """A person asked for changes on the bot's PR: back to implementation, bounded by rounds.

        Only someone who may `/factory revise` steers the run this way, and only while it is
        active: a finished run is never re-opened by a review (its author is told, once, what
        starts work again).
        """
        if state.lower() != "changes_requested":
            return "noted"
        feature = await self._run_for_pull_request(repo, pr_number)
        if feature is None:
            return "not ours"
        gh = await self.runtime.repo(installation_id, repo)
        allowed = await self._may_steer(
            installation_id=installation_id,
            repo=repo,
            gh=gh,
            actor=reviewer,
            actor_type=reviewer_type,
            commands=("revise",),
            subject="a review asking for changes",
            what=f"review on #{pr_number}",
        )
        if not allowed:
            return "refused"
        run: RunContext | None = None
        guidance: str | None = None
        # The run may move on between reading it and sending it back: look again, a few times.
        for _attempt in range(3):
            if FeatureState(feature.state).is_terminal:
                key = review_id if review_id is not None else delivery_id
                await self._say_run_finished(gh, feature, pr_number, reviewer, key)
                return "finished"
            run = run or await self.runtime.open_repo(installation_id, repo)
            max_rounds = int(getattr(run.config, "max_rounds", 3))
            if feature.round + 1 >= max_rounds:
                if await self.coordinator.transition(
                    feature.id,
                    expect=_where(feature),
                    decision=Decision(
                        FeatureState.FAILED,
                        None,
                        feature.round,
                        f"review asked for changes again after {max_rounds} rounds",
                    ),
                    cause="pull_request_review.submitted",
                    actor=reviewer,
                ):
                    await self.coordinator.refresh_status(feature.id, run)
                    return "rounds exhausted"
            else:
                guidance = guidance or await review_feedback(
                    gh, pr_number, review_id, f"@{reviewer}", body, author=reviewer
                )
                if await self._send_back(feature, guidance, reviewer):
                    await self.coordinator.refresh_status(feature.id, run)
                    return "revising"
            async with self.db.session() as s:
                fresh = await s.get(Feature, feature.id)
            if fresh is None:
                return "not ours"
            feature = fresh
        log.info(
            "%s: review on #%s by %s not acted on: the run kept moving", repo, pr_number, reviewer
        )
        return "busy"

    async def _send_back(self, feature: Feature, guidance: str, reviewer: str) -> bool:
        """Store the review as guidance and move the still-active run to a new implementation
        round, both only if the run is where it was read. Unlike ``Coordinator.rerun`` this
        never re-activates a finished run, even one that finished a moment ago."""
        where = _where(feature)
        async with self.db.session() as s:
            stored = await s.execute(
                update(Feature)
                .where(
                    Feature.id == feature.id,
                    Feature.active_key.is_not(None),
                    Feature.state == feature.state,
                    Feature.round == feature.round,
                    Feature.attempt == feature.attempt,
                )
                .values(guidance=guidance)
            )
        if not stored.rowcount:
            return False
        return await self.coordinator.transition(
            feature.id,
            expect=where,
            decision=Decision(
                Stage.IMPLEMENT.state,
                Stage.IMPLEMENT,
                feature.round + 1,
                "review asked for changes",
            ),
            cause="review asked for changes",
            actor=reviewer,
            new_attempt=True,
        )

    async def _say_run_finished(
        self, gh: Any, feature: Feature, pr_number: int, reviewer: str, key: object
    ) -> None:
        """One reply per review to a permitted reviewer of a finished run: what starts work."""
        retry = (
            " `/factory retry` runs the step that failed again."
            if feature.state == FeatureState.FAILED.value
            else ""
        )
        await gh.upsert_marked_comment(
            pr_number,
            _marker("review-on-finished-run", key),
            f"@{reviewer}: run {feature.id} has finished (**{feature.state}**), so a review no "
            "longer sends it back to implementation. Comment `/factory revise <what to change>` "
            "here for a new implementation round on this pull request, or "
            f"`/factory implement` on #{feature.issue_number} starts a new run.{retry}",
        )

    async def review_comment_created(
        self,
        *,
        installation_id: int,
        repo: str,
        pr_number: int,
        author: str | None = None,
        author_type: str = "User",
        **_: Any,
    ) -> str:
        """An inline comment on the bot's PR starts nothing by itself: threads reach a revision
        only through the review they belong to, written by its reviewer (see review_feedback).
        Should a comment ever steer a run, it must come after this gate."""
        if await self._run_for_pull_request(repo, pr_number) is None:
            return "not ours"
        gh = await self.runtime.repo(installation_id, repo)
        allowed = await self._may_steer(
            installation_id=installation_id,
            repo=repo,
            gh=gh,
            actor=author,
            actor_type=author_type,
            commands=("revise",),
            subject="a review comment",
            what=f"review comment on #{pr_number}",
        )
        return "noted" if allowed else "refused"

    async def pr_closed(
        self, *, installation_id: int, repo: str, pr_number: int, merged: bool, **_: Any
    ) -> str:
        feature = await self._run_for_pull_request(repo, pr_number)
        if feature is None:
            return "not ours"
        if self.learn is not None:
            await self.learn(
                installation_id=installation_id,
                repo=repo,
                pr_number=pr_number,
                merged=merged,
                feature_id=feature.id,
            )
        if feature.active_key is not None:
            run = await self.runtime.open_repo(installation_id, repo)
            decision = (
                Decision(FeatureState.COMPLETED, None, feature.round, "pull request merged")
                if merged
                else Decision(
                    FeatureState.CANCELLED,
                    None,
                    feature.round,
                    "pull request closed without merging",
                )
            )
            await self.coordinator.transition(
                feature.id, expect=None, decision=decision, cause="pull_request.closed"
            )
            await self.coordinator.refresh_status(feature.id, run)
        return "merged" if merged else "closed"

    async def pr_synchronized(
        self, *, installation_id: int, repo: str, pr_number: int, head_sha: str, **_: Any
    ) -> str:
        feature = await self._run_for_pull_request(repo, pr_number)
        if feature is None or feature.head_sha == head_sha:
            return "no change"
        async with self.db.session() as s:
            row = await s.get(Feature, feature.id)
            assert row is not None
            row.head_sha = head_sha
        run = await self.runtime.open_repo(installation_id, repo)
        await self.coordinator.refresh_status(feature.id, run)
        return "head updated"

    async def _current_on_head(self, feature: Feature, head_sha: str | None) -> bool:
        """Whether a check on ``head_sha`` is about the run as it stands: the run's own head,
        and the run is still the one its pull request belongs to. Re-running a check of an
        older head, or of a run a newer one replaced, must not bring that run back."""
        if head_sha is None or head_sha != feature.head_sha:
            return False
        if feature.pr_number is None:
            return True
        owner = await self._run_for_pull_request(feature.repository, feature.pr_number)
        return owner is not None and owner.id == feature.id

    async def check_rerequested(
        self,
        *,
        installation_id: int,
        repo: str,
        name: str,
        external_id: str | None = None,
        head_sha: str | None = None,
        sender: str | None = None,
        sender_type: str = "User",
        **_: Any,
    ) -> str:
        """Someone pressed "Re-run" (or an action button) on one of the run's stage checks:
        that stage runs again if they may run its command and the check is on the run's head."""
        parsed = parse_external_id(external_id)
        stage = parsed[1] if parsed else stage_for_check(name)
        feature_id = parsed[0] if parsed else None
        if stage is None or feature_id is None:
            return "not ours"
        async with self.db.session() as s:
            feature = await s.get(Feature, feature_id)
        # The id comes with the event: a check here may only name this repository's runs.
        if (
            feature is None
            or feature.repository.casefold() != repo.casefold()
            or feature.installation_id != installation_id
        ):
            return "not ours"
        what = f"check {name} re-requested"
        if not await self._current_on_head(feature, head_sha):
            log.info(
                "%s: %s by %s not acted on: the check is on %s, not on run %s's current head",
                repo, what, sender, (head_sha or "?")[:7], feature.id,
            )
            return "old head"
        gh = await self.runtime.repo(installation_id, repo)
        allowed = await self._may_steer(
            installation_id=installation_id,
            repo=repo,
            gh=gh,
            actor=sender,
            actor_type=sender_type,
            commands=(STAGE_COMMANDS[stage],),
            subject=f"re-running the {stage.title.lower()} check",
            what=what,
        )
        if not allowed:
            return "refused"
        assert sender is not None
        run = await self.runtime.open_repo(installation_id, repo)
        if stage not in run.enabled:
            return "stage not enabled"
        started = await self.coordinator.rerun(feature_id, stage, actor=sender, cause=what)
        await self.coordinator.refresh_status(feature_id, run)
        return "rerun" if started else "busy"

    async def check_suite_rerequested(
        self,
        *,
        installation_id: int,
        repo: str,
        head_sha: str,
        sender: str | None = None,
        sender_type: str = "User",
        **_: Any,
    ) -> str:
        """"Re-run all checks" on the run's head: what `/factory retry` does, on its terms
        (a failed or cancelled run; someone who may retry, and run the stage that failed)."""
        async with self.db.session() as s:
            feature = await s.scalar(
                select(Feature)
                .where(
                    Feature.repository == repo,
                    Feature.installation_id == installation_id,
                    Feature.head_sha == head_sha,
                )
                .order_by(Feature.id.desc())
                .limit(1)
            )
        if feature is None:
            return "not ours"
        what = "check suite re-requested"
        if not await self._current_on_head(feature, head_sha):
            log.info("%s: %s by %s not acted on: run %s moved on", repo, what, sender, feature.id)
            return "old head"
        stage = await self._failed_stage(feature.id)
        gh = await self.runtime.repo(installation_id, repo)
        allowed = await self._may_steer(
            installation_id=installation_id,
            repo=repo,
            gh=gh,
            actor=sender,
            actor_type=sender_type,
            commands=("retry", STAGE_COMMANDS[stage]),
            subject="re-running the checks",
            what=what,
        )
        if not allowed:
            return "refused"
        assert sender is not None
        if feature.state not in (FeatureState.FAILED.value, FeatureState.CANCELLED.value):
            log.info(
                "%s: %s by %s not acted on: run %s is %s; only a failed or cancelled run "
                "is retried",
                repo, what, sender, feature.id, feature.state,
            )
            return "not failed"
        run = await self.runtime.open_repo(installation_id, repo)
        started = await self.coordinator.rerun(feature.id, stage, actor=sender, cause=what)
        await self.coordinator.refresh_status(feature.id, run)
        return "rerun" if started else "busy"

    async def workflow_run_completed(
        self,
        *,
        installation_id: int,
        repo: str,
        run_id: int | None = None,
        conclusion: str | None = None,
        sender: str | None = None,
        sender_type: str = "User",
        **_: Any,
    ) -> str:
        """A workflow run on the bot's branches (or dispatched by the bot) finished.

        The deploy stage follows the runs it dispatched itself (it polls them), so today the
        webhook starts nothing; routing it keeps the App's event list honest. Anything it is
        ever made to start (a fix round after a failed CI run, say) belongs after this gate:
        the bot's own runs pass; anyone else's need the permission `/factory revise` needs.
        """
        gh = await self.runtime.repo(installation_id, repo)
        if sender != gh.bot_login:
            allowed = await self._may_steer(
                installation_id=installation_id,
                repo=repo,
                gh=gh,
                actor=sender,
                actor_type=sender_type,
                commands=("revise",),
                subject="a workflow run on the bot's branch",
                what=f"workflow run {run_id} ({conclusion})",
            )
            if not allowed:
                return "refused"
        return "followed by the deploy stage"

    async def knowledge_refresh(self, **kwargs: Any) -> str:
        """A push to the default branch: pick up a changed config, then refresh knowledge."""
        changed = [
            *kwargs.get("added", []),
            *kwargs.get("modified", []),
            *kwargs.get("removed", []),
        ]
        if CONFIG_PATH in changed:
            gh = await self.runtime.repo(kwargs["installation_id"], kwargs["repo"])
            try:
                await self._load_config(kwargs["installation_id"], gh)
            except ConfigInvalid:
                # Told on the next label or command; until then the old label still routes here.
                log.info("%s: pushed an invalid %s", kwargs["repo"], CONFIG_PATH)
        if self.refresh_knowledge is None:
            return "knowledge off"
        await self.refresh_knowledge(**kwargs)
        return "refreshed"

    async def installation_changed(
        self,
        *,
        installation_id: int,
        action: str,
        account: str | None = None,
        repositories_added: list[dict[str, Any]] | None = None,
        repositories_removed: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> str:
        """Remember installations and their repositories (ingress reads trigger labels from here)."""
        from bot.db.models import utcnow

        async with self.db.session() as s:
            row = await s.get(Installation, installation_id)
            if row is None:
                row = Installation(id=installation_id, account_login=account or "")
                s.add(row)
            if action == "deleted":
                row.removed_at = utcnow()
            row.suspended = action == "suspend"
            for repo in repositories_added or []:
                existing = await s.get(Repository, repo["id"])
                if existing is None:
                    s.add(
                        Repository(
                            id=repo["id"],
                            full_name=repo["full_name"],
                            installation_id=installation_id,
                        )
                    )
                else:
                    existing.removed_at = None
                    existing.installation_id = installation_id
            for repo in repositories_removed or []:
                existing = await s.get(Repository, repo["id"])
                if existing is not None:
                    existing.removed_at = utcnow()
        return action
