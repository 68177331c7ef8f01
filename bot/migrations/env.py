"""Alembic environment for the state store.

Called two ways: by :mod:`bot.db.migrate`, which hands over an open connection in
``config.attributes["connection"]`` (so migrations run inside the caller's event loop), or by the
``alembic`` command line, which reads ``sqlalchemy.url`` and opens its own async engine.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def _run_with(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_with)
    finally:
        await engine.dispose()


def _run_offline(url: str) -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline(config.get_main_option("sqlalchemy.url") or "")
elif (shared := config.attributes.get("connection")) is not None:
    _run_with(shared)
else:
    asyncio.run(_run_async(config.get_main_option("sqlalchemy.url") or ""))
