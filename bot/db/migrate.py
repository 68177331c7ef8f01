"""Apply the Alembic migrations from code; no alembic.ini is needed in the working directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db.database import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (and ``url`` when given)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser treats % as interpolation; URLs may contain %-escapes.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


async def upgrade(url: str, revision: str = "head") -> str | None:
    """Migrate the database at ``url`` up to ``revision``; returns the revision it is now at."""
    return await _migrate(url, command.upgrade, revision)


async def downgrade(url: str, revision: str) -> str | None:
    """Migrate the database at ``url`` down to ``revision`` ("base": no tables)."""
    return await _migrate(url, command.downgrade, revision)


async def _migrate(url: str, step: Callable[[Config, str], None], revision: str) -> str | None:
    db = Database(url)
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(_run_step, step, revision)
        return await _current(db.engine)
    finally:
        await db.dispose()


async def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None: never migrated)."""
    db = Database(url)
    try:
        return await _current(db.engine)
    finally:
        await db.dispose()


def _run_step(connection: Connection, step: Callable[[Config, str], None], revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    step(config, revision)


async def _current(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
