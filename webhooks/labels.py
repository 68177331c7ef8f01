"""The trigger label a repository configured, as cached in the state store."""

from __future__ import annotations

from sqlalchemy import select

from bot.db.database import Database
from bot.db.models import Repository


class TriggerLabels:
    """Reads ``Repository.trigger_label``; None when the repository is unknown or unset."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def __call__(self, repository: str) -> str | None:
        statement = select(Repository.trigger_label).where(Repository.full_name == repository)
        async with self._db.engine.connect() as conn:
            return (await conn.execute(statement)).scalar_one_or_none()
