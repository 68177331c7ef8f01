"""The async engine and session factory, built from a URL and passed around explicitly."""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bot.db.models import Base

# How long a SQLite connection waits for another writer by default: workers hold a write for
# a while and may wait. Callers with a deadline of their own use ``Database.begin_within``.
SQLITE_BUSY_TIMEOUT_S = 30.0
# Both timeouts end with the transaction (is_local), so the pooled connection keeps none.
_PG_BOUND = text(
    "SELECT set_config('lock_timeout', :ms, true), set_config('statement_timeout', :ms, true)"
)


class Database:
    """Owns one engine; ``session()`` yields a session that commits on success."""

    def __init__(
        self, url: str, *, echo: bool = False, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S
    ) -> None:
        self.url = url
        self._busy_timeout_ms = _ms(busy_timeout_s)
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": busy_timeout_s} if self.is_sqlite else {}
        self.engine: AsyncEngine = create_async_engine(
            url, echo=echo, connect_args=connect_args, pool_pre_ping=not self.is_sqlite
        )
        if self.is_sqlite:
            event.listen(
                self.engine.sync_engine,
                "connect",
                functools.partial(_sqlite_pragmas, busy_timeout_ms=self._busy_timeout_ms),
            )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    @asynccontextmanager
    async def begin_within(self, timeout_s: float) -> AsyncIterator[AsyncConnection]:
        """A transaction (committed on success) whose waits for locks give up after
        ``timeout_s`` in the database itself.

        The bound has to live in the database, not only in an ``asyncio`` timeout: aiosqlite
        runs each connection in a thread that a cancelled await does not stop, so a statement
        stuck in SQLite's busy handler would keep its connection (and the rollback queued
        behind it) for the whole busy timeout. On SQLite the connection's busy timeout is
        lowered for this transaction and restored after it; on PostgreSQL ``lock_timeout``
        and ``statement_timeout`` are set for this transaction only.
        """
        ms = _ms(timeout_s)
        async with self.engine.connect() as conn:
            if not self.is_sqlite:
                async with conn.begin():
                    await conn.execute(_PG_BOUND, {"ms": f"{ms}ms"})
                    yield conn
                return
            try:
                async with conn.begin():
                    # A PRAGMA opens no SQLite transaction: the first write still does.
                    await conn.exec_driver_sql(f"PRAGMA busy_timeout={ms}")
                    yield conn
            finally:
                await self._restore_busy_timeout(conn)

    async def _restore_busy_timeout(self, conn: AsyncConnection) -> None:
        try:
            await conn.exec_driver_sql(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        except SQLAlchemyError:
            # Not back in the pool with the short timeout, whatever went wrong.
            await conn.invalidate()

    async def create_all(self) -> None:
        """Create tables directly (tests); production uses the Alembic migrations."""
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _sqlite_pragmas(dbapi_connection: object, _record: object, *, busy_timeout_ms: int) -> None:
    # WAL lets the server and the worker read while the other writes; foreign keys are off
    # by default in SQLite.
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL stays corruption-safe and only risks the last commits on power loss;
    # it takes the fsync off every webhook's record-once insert.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.close()
