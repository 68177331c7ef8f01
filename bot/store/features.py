"""The store's queries about runs (``features``): found by issue, pull request or head; started,
moved and given facts. Every change of state is written to the audit log with its cause."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.contracts.lifecycle import Decision, FeatureState
from bot.contracts.runs import FeatureView, RunFacts
from bot.db import AuditEvent, Feature
from bot.store._base import StoreScope

# Where a run was when it was read: (state, round, attempt).
Where = tuple[FeatureState, int, int]


class StartRaced(Exception):
    """Another start won the issue's active run, which ended before it could be read."""


def active_key(repository: str, issue_number: int) -> str:
    return f"{repository.lower()}#{issue_number}"


def where(feature: Feature) -> Where:
    return FeatureState(feature.state), feature.round, feature.attempt


def view_of(feature: Feature) -> FeatureView:
    return FeatureView(
        id=feature.id,
        installation_id=feature.installation_id,
        repository=feature.repository,
        issue_number=feature.issue_number,
        round=feature.round,
        branch=feature.branch,
        pr_number=feature.pr_number,
        head_sha=feature.head_sha,
        plan=feature.plan,
        triggered_by=feature.triggered_by,
        guidance=feature.guidance,
        cost_usd=feature.cost_usd,
        tokens=feature.tokens,
        plan_comment_id=feature.plan_comment_id,
    )


@dataclass(frozen=True)
class Started:
    """The issue's active run; ``mine`` when this start made it (``created``) or is a repeat
    of the job that made it (same trigger delivery)."""

    feature: Feature
    mine: bool
    created: bool = False


@dataclass(frozen=True)
class Moved:
    """A transition that happened: the run as it is now, and whether it ended."""

    feature: Feature
    ended: bool


class FeatureQueries(StoreScope):
    # ------------------------------------------------------------------ reading runs

    async def get(self, feature_id: int) -> Feature | None:
        async with self.db.session() as s:
            return await s.get(Feature, feature_id)

    async def for_issue(self, repo: str, number: int, *, active_only: bool) -> Feature | None:
        """The newest run on issue (or pull request) ``number``."""
        query = select(Feature).where(
            Feature.repository == repo,
            or_(Feature.issue_number == number, Feature.pr_number == number),
        )
        if active_only:
            query = query.where(Feature.active_key.is_not(None))
        async with self.db.session() as s:
            found: Feature | None = await s.scalar(query.order_by(Feature.id.desc()).limit(1))
        return found

    async def issue_of(self, repo: str, number: int) -> int:
        """The issue a pull request of ours implements; any other number is its own issue."""
        async with self.db.session() as s:
            issue = await s.scalar(
                select(Feature.issue_number)
                .where(Feature.repository == repo, Feature.pr_number == number)
                .order_by(Feature.id.desc())
                .limit(1)
            )
        return number if issue is None else int(issue)

    async def for_pull_request(self, repo: str, pr_number: int) -> Feature | None:
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

    async def on_head(self, repo: str, installation_id: int, head_sha: str) -> Feature | None:
        async with self.db.session() as s:
            found: Feature | None = await s.scalar(
                select(Feature)
                .where(
                    Feature.repository == repo,
                    Feature.installation_id == installation_id,
                    Feature.head_sha == head_sha,
                )
                .order_by(Feature.id.desc())
                .limit(1)
            )
            return found

    async def active(self) -> Sequence[Feature]:
        async with self.db.session() as s:
            return (await s.scalars(select(Feature).where(Feature.active_key.is_not(None)))).all()

    async def running_count(self, installation_id: int) -> int:
        async with self.db.session() as s:
            return await _running(s, installation_id)

    async def next_queued(self, installation_id: int, *, max_running: int) -> Feature | None:
        """The oldest run waiting for a slot, if the installation has one free."""
        async with self.db.session() as s:
            if await _running(s, installation_id) >= max_running:
                return None
            found: Feature | None = await s.scalar(
                select(Feature)
                .where(
                    Feature.installation_id == installation_id,
                    Feature.state == FeatureState.QUEUED.value,
                )
                .order_by(Feature.id)
                .limit(1)
            )
            return found

    # ------------------------------------------------------------------ changing runs

    async def create(
        self,
        *,
        installation_id: int,
        repository: str,
        issue_number: int,
        sender: str,
        delivery_id: str,
        guidance: str | None,
        cause: str,
        max_running: int,
    ) -> Started:
        """The issue's new run, or its active one.

        The unique ``active_key`` makes two racing starts (two labels, two replicas) end in
        one run; a re-run of the same job finds its own run by the trigger delivery.
        """
        key = active_key(repository, issue_number)
        async with self.db.session() as s:
            existing = await s.scalar(select(Feature).where(Feature.active_key == key))
            if existing is not None:
                return Started(existing, existing.trigger_delivery == delivery_id)
            full = await _running(s, installation_id) >= max_running
            state = FeatureState.QUEUED if full else FeatureState.PLANNING
            feature = Feature(
                installation_id=installation_id,
                repository=repository,
                issue_number=issue_number,
                active_key=key,
                state=state.value,
                triggered_by=sender,
                trigger_delivery=delivery_id,
                guidance=guidance,
            )
            s.add(feature)
            try:
                await s.flush()
            except IntegrityError:
                await s.rollback()
                async with self.db.session() as s2:
                    other = await s2.scalar(select(Feature).where(Feature.active_key == key))
                if other is None:  # the winner already finished: extremely unlikely, retry
                    raise StartRaced(key) from None
                return Started(other, other.trigger_delivery == delivery_id)
            s.add(
                AuditEvent(
                    feature_id=feature.id,
                    repository=repository,
                    actor=sender,
                    kind="feature.created",
                    to_state=state.value,
                    cause=f"{cause} (delivery {delivery_id})",
                )
            )
        return Started(feature, mine=True, created=True)

    async def transition(
        self,
        feature_id: int,
        *,
        expect: Where | None,
        decision: Decision,
        cause: str,
        actor: str,
        new_attempt: bool = False,
    ) -> Moved | None:
        """Move the run if it is still where ``expect`` says (anywhere, if None)."""
        async with self.db.session() as s:
            feature = await s.get(Feature, feature_id, with_for_update=True)
            if feature is None:
                return None
            if expect is not None and where(feature) != expect:
                return None
            before = feature.state
            feature.state = decision.state.value
            feature.round = decision.round
            if new_attempt:
                feature.attempt += 1
            ended = decision.state.is_terminal
            if ended:
                feature.active_key = None
                feature.finished_at = self.clock()
                feature.error = decision.reason if decision.state is FeatureState.FAILED else None
            s.add(
                AuditEvent(
                    feature_id=feature_id,
                    repository=feature.repository,
                    actor=actor,
                    kind="feature.transition",
                    from_state=before,
                    to_state=decision.state.value,
                    cause=cause,
                    details={"reason": decision.reason, "round": decision.round},
                )
            )
            await s.flush()
        return Moved(feature, ended)

    async def reactivate(self, feature_id: int, *, guidance: str | None) -> Feature | None:
        """Make a finished run the issue's active one again (unless another is active); store
        the guidance. None when the run is gone or another run holds the issue."""
        async with self.db.session() as s:
            feature = await s.get(Feature, feature_id)
            if feature is None:
                return None
            key = active_key(feature.repository, feature.issue_number)
            if feature.active_key is None:
                if await s.scalar(select(Feature.id).where(Feature.active_key == key)):
                    return None
                feature.active_key = key
                feature.finished_at = None
                feature.error = None
            if guidance is not None:
                feature.guidance = guidance
        return feature

    async def guide_if_at(self, feature: Feature, guidance: str) -> bool:
        """Store guidance for the next round, only if the active run is still where it was."""
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
        return bool(stored.rowcount)  # type: ignore[attr-defined]

    async def record(self, feature_id: int, facts: RunFacts) -> None:
        async with self.db.session() as s:
            await s.execute(update(Feature).where(Feature.id == feature_id).values(**facts.given()))


async def _running(s: AsyncSession, installation_id: int) -> int:
    running = await s.scalar(
        select(func.count(Feature.id)).where(
            Feature.installation_id == installation_id,
            Feature.active_key.is_not(None),
            Feature.state != FeatureState.QUEUED.value,
        )
    )
    return int(running or 0)
