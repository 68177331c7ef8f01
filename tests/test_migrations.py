"""The Alembic history builds the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from bot.db.database import Database
from bot.db.migrate import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from bot.db.models import Base, Feature, Task


async def _schema_diff(url: str) -> list[object]:
    db = Database(url)
    try:
        async with db.engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await db.dispose()


async def test_upgrade_to_head_matches_the_models(db_url: str) -> None:
    assert await current_revision(db_url) is None

    assert await upgrade(db_url) == head_revision()

    assert await _schema_diff(db_url) == []


async def test_upgrade_twice_is_a_no_op_and_the_schema_works(db_url: str) -> None:
    await upgrade(db_url)
    await upgrade(db_url)
    db = Database(db_url)
    try:
        async with db.session() as session:
            feature = Feature(installation_id=1, repository="o/r", issue_number=7)
            feature.tasks.append(Task(kind="plan"))
            session.add(feature)
        async with db.session() as session:
            stored = (await session.execute(select(Task.kind, Feature.plan).join(Feature))).one()
        assert tuple(stored) == ("plan", None)
    finally:
        await db.dispose()


async def test_downgrade_to_base_removes_every_table(sqlite_url: str) -> None:
    await upgrade(sqlite_url)
    assert await downgrade(sqlite_url, "base") is None
    db = Database(sqlite_url)
    try:
        async with db.engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await db.dispose()
    assert set(tables) <= {"alembic_version"}
    assert await current_revision(sqlite_url) is None


async def test_the_alembic_command_line_path_opens_its_own_engine(sqlite_url: str) -> None:
    # `alembic -x ...` style use: no connection handed over, env.py runs its own event loop.
    await asyncio.to_thread(command.upgrade, alembic_config(sqlite_url), "head")

    assert await current_revision(sqlite_url) == head_revision()


def test_history_is_one_line_without_branches() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None
