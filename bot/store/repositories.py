"""What the bot knows about installations and their repositories.

Ingress routes labels without calling GitHub, so it reads each repository's trigger label from
here; the knowledge jobs note here which commit of a repository their index holds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database, Feature, Installation, Repository
from bot.db.models import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepositoryFacts:
    id: int
    full_name: str
    default_branch: str


@dataclass(frozen=True)
class ListedRepository:
    id: int
    full_name: str


class RepositoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def remember(
        self, installation_id: int, facts: RepositoryFacts, *, trigger_label: str
    ) -> None:
        """Keep ingress's copy of the trigger label in step with the default branch's config."""
        try:
            async with self.db.session() as s:
                row = await _row(s, installation_id, facts)
                # Unchanged values write nothing: the session only flushes real changes.
                row.trigger_label = trigger_label
                row.default_branch = facts.default_branch
        except IntegrityError:
            # Another job added the repository at the same moment, from the same config.
            log.debug("%s was recorded concurrently", facts.full_name)

    async def trigger_label(self, full_name: str) -> str | None:
        """The trigger label last remembered for the repository (None: none yet)."""
        async with self.db.session() as s:
            found: str | None = await s.scalar(
                select(Repository.trigger_label).where(Repository.full_name == full_name)
            )
            return found

    async def installation_changed(
        self,
        installation_id: int,
        *,
        action: str | None,
        account: str | None,
        added: Sequence[ListedRepository],
        removed: Sequence[ListedRepository],
    ) -> None:
        async with self.db.session() as s:
            row = await s.get(Installation, installation_id)
            if row is None:
                row = Installation(id=installation_id, account_login=account or "")
                s.add(row)
            if action == "deleted":
                row.removed_at = utcnow()
            row.suspended = action == "suspend"
            for repo in added:
                existing = await s.get(Repository, repo.id)
                if existing is None:
                    s.add(
                        Repository(
                            id=repo.id, full_name=repo.full_name, installation_id=installation_id
                        )
                    )
                else:
                    existing.removed_at = None
                    existing.installation_id = installation_id
            for repo in removed:
                existing = await s.get(Repository, repo.id)
                if existing is not None:
                    existing.removed_at = utcnow()

    # ------------------------------------------------------------------ knowledge index

    async def indexed_sha(self, full_name: str) -> str | None:
        async with self.db.session() as s:
            row = await s.scalar(select(Repository).where(Repository.full_name == full_name))
        return row.indexed_sha if row is not None else None

    async def remember_index(
        self, installation_id: int, facts: RepositoryFacts, *, sha: str
    ) -> None:
        async with self.db.session() as s:
            row = await _row(s, installation_id, facts, by_name=True)
            row.default_branch = facts.default_branch
            row.indexed_sha = sha

    async def set_indexed_sha(self, full_name: str, sha: str) -> None:
        async with self.db.session() as s:
            row = await s.scalar(select(Repository).where(Repository.full_name == full_name))
            if row is not None:
                row.indexed_sha = sha

    async def installation_of_latest_run(self, full_name: str) -> int | None:
        """The installation the repository's newest run acts as (None: it has had no run)."""
        async with self.db.session() as s:
            found: int | None = await s.scalar(
                select(Feature.installation_id)
                .where(Feature.repository == full_name)
                .order_by(Feature.id.desc())
                .limit(1)
            )
            return found


async def _row(
    s: AsyncSession, installation_id: int, facts: RepositoryFacts, *, by_name: bool = False
) -> Repository:
    """The repository's row, added if missing (its installation's row may not exist yet: the
    installation webhook can arrive later)."""
    by_id = None if by_name else await s.get(Repository, facts.id)
    row = by_id or await s.scalar(select(Repository).where(Repository.full_name == facts.full_name))
    if row is None:
        known = await s.get(Installation, installation_id) is not None
        row = Repository(
            id=facts.id,
            full_name=facts.full_name,
            installation_id=installation_id if known else None,
        )
        s.add(row)
    return row
