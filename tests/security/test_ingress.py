"""Ingress against a stuck state store and against bad clients (issue 12).

The real app (``create_app`` with real services: a SQLite file or a PostgreSQL scratch
database, and a Redis database of the test's own) receives signed real payloads from the shared
fixtures. A socket-level client talks to a real uvicorn server on a loopback port where a
disconnect or a slow body must be modelled: in-process ASGI transports cannot do either.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import os
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
import uvicorn
from arq.connections import ArqRedis
from fastapi import FastAPI
from githubkit.webhooks import sign
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from bot.app import create_app
from bot.db.database import Database
from bot.db.models import WebhookDelivery
from bot.queue import create_arq_pool
from bot.services import Services, build_services
from bot.settings import Settings, load_settings
from webhooks.ingress import IngressLimits

FIXTURES = Path(
    os.environ.get(
        "FACTORY_WEBHOOK_FIXTURES",
        Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "webhooks",
    )
)
SECRET = "ingress-test-secret"
PATH = "/webhooks/github"
# What the issue asks for: well inside GitHub's 10 s, whatever the store is doing.
ANSWER_BOUND_S = 5.0


def labeled_body(*, note: str = "") -> bytes:
    """GitHub's issues.labeled example with the trigger label and an installation: queues a job."""
    payload: dict[str, Any] = json.loads(
        (FIXTURES / "issues" / "labeled.payload.json").read_bytes()
    )
    payload = copy.deepcopy(payload)
    payload["label"]["name"] = "factory"
    payload["installation"] = {"id": 31337, "node_id": "MDIzOkludGVncmF0aW9u"}
    if note:
        payload["issue"]["body"] = note
    return json.dumps(payload).encode()


def signed_headers(body: bytes, delivery_id: str, event: str = "issues") -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id,
        "X-Hub-Signature-256": sign(SECRET, body, "sha256"),
        "Content-Type": "application/json",
    }


@dataclass
class Bot:
    settings: Settings
    services: Services
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def arq(self) -> ArqRedis:
        return self.services.redis

    async def deliver(self, body: bytes, delivery_id: str) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        # A guard so that a server which never answers fails the test instead of hanging it.
        response = await asyncio.wait_for(
            self.client.post(PATH, content=body, headers=signed_headers(body, delivery_id)), 60
        )
        return response, time.monotonic() - started

    async def rows(self) -> list[WebhookDelivery]:
        async with self.db.session() as session:
            return list((await session.execute(select(WebhookDelivery))).scalars())

    async def queued_job_ids(self) -> list[str]:
        return sorted(
            raw.decode() for raw in await self.arq.zrange(self.arq.default_queue_name, 0, -1)
        )

    def archived(self) -> bool:
        return (self.settings.data_dir / "deliveries").exists()


def make_settings(tmp_path: Path, database_url: str, redis_url: str) -> Settings:
    return load_settings(
        _env_file=None,
        webhook_secret=SECRET,
        trigger_label="factory",
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url,
    )


@asynccontextmanager
async def running_bot(
    tmp_path: Path, database_url: str, redis_url: str, limits: IngressLimits | None = None
) -> AsyncIterator[Bot]:
    settings = make_settings(tmp_path, database_url, redis_url)
    db = Database(database_url)
    await db.create_all()
    pool = await create_arq_pool(redis_url)
    services = await build_services(settings, redis=pool, db=db)
    app = create_app(settings, services, ingress_limits=limits)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot")
    try:
        yield Bot(settings, services, app, client)
    finally:
        await client.aclose()
        await services.aclose()
        await pool.aclose()
        await db.dispose()


# A state store that cannot answer


async def _stuck_store_then_redelivery(
    bot: Bot, lock: Any, release: Any, step: str = "record the delivery"
) -> None:
    """Shared by both databases: ``lock()`` makes the deliveries table unwritable from another
    connection, ``release()`` ends that."""
    ids = [f"locked-{n}" for n in range(3)]
    bodies = {delivery_id: labeled_body(note=delivery_id) for delivery_id in ids}
    await lock()
    try:
        answers = await asyncio.gather(*(bot.deliver(bodies[d], d) for d in ids))
        # No statement is left waiting on the lock (in aiosqlite's thread, or on the server).
        pool = bot.db.engine.pool
        assert isinstance(pool, QueuePool)
        assert pool.checkedout() == 0, "a connection is still held after answering"
    finally:
        await release()

    for response, elapsed in answers:
        assert response.status_code == 503, response.text
        assert response.json()["error"].startswith(f"state store unavailable ({step})")
        assert elapsed < ANSWER_BOUND_S, f"answered after {elapsed:.1f} s"
    # Nothing half-recorded: no row would make GitHub's redelivery a "duplicate".
    assert await bot.rows() == []
    assert await bot.queued_job_ids() == []

    redelivered = [await bot.deliver(bodies[d], d) for d in ids]

    assert [(r.status_code, r.json()["status"]) for r, _ in redelivered] == [(202, "queued")] * 3
    assert await bot.queued_job_ids() == sorted(f"{d}:feature_start:0" for d in ids)
    assert sorted((row.delivery_id, row.status) for row in await bot.rows()) == [
        (d, "queued") for d in ids
    ]


async def test_a_locked_sqlite_answers_503_fast_and_the_redelivery_is_queued_once(
    tmp_path: Path, redis_url: str, clean_env: None
) -> None:
    path = tmp_path / "factory.db"
    async with running_bot(tmp_path, f"sqlite+aiosqlite:///{path}", redis_url) as bot:
        holder = sqlite3.connect(path, isolation_level=None, timeout=0)

        async def lock() -> None:
            holder.execute("BEGIN EXCLUSIVE")

        async def release() -> None:
            holder.execute("ROLLBACK")

        try:
            await _stuck_store_then_redelivery(bot, lock, release)
        finally:
            holder.close()
        # The short wait was the ingress's alone: a pooled connection is back to the long one.
        async with bot.db.engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 30_000


async def test_a_claim_written_after_its_request_was_cancelled_is_left_for_the_redelivery(
    tmp_path: Path, redis_url: str, clean_env: None
) -> None:
    """The request goes away (a server shutting down cancels it) while its claim waits on the
    lock; the lock then clears and the claim commits. Nobody answered GitHub 2xx, so the row
    must not make the redelivery a duplicate."""
    path = tmp_path / "factory.db"
    async with running_bot(tmp_path, f"sqlite+aiosqlite:///{path}", redis_url) as bot:
        holder = sqlite3.connect(path, isolation_level=None, timeout=0)
        body = labeled_body()
        try:
            holder.execute("BEGIN EXCLUSIVE")
            request = asyncio.create_task(bot.deliver(body, "abandoned-1"))
            await asyncio.sleep(0.5)  # the claim is in SQLite's busy handler now
            request.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await request
            holder.execute("ROLLBACK")  # the claim's INSERT goes through and commits
        finally:
            holder.close()
        for _ in range(200):
            rows = await bot.rows()
            if rows and rows[0].status != "queued":
                break
            await asyncio.sleep(0.01)

        assert [(row.delivery_id, row.status) for row in rows] == [("abandoned-1", "failed")]
        assert await bot.queued_job_ids() == []

        redelivered, _ = await bot.deliver(body, "abandoned-1")

        assert (redelivered.status_code, redelivered.json()["status"]) == (202, "queued")
        assert await bot.queued_job_ids() == ["abandoned-1:feature_start:0"]


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("table", "step"),
    [
        ("webhook_deliveries", "record the delivery"),
        # What the trigger-label lookup reads, before anything is recorded.
        ("repositories", "read the trigger label"),
    ],
)
async def test_a_locked_postgres_table_answers_503_fast_and_the_redelivery_is_queued_once(
    tmp_path: Path, pg_url: str, redis_url: str, clean_env: None, table: str, step: str
) -> None:
    url = make_url(pg_url)
    async with running_bot(tmp_path, pg_url, redis_url) as bot:
        holder = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, database=url.database
        )
        transaction = holder.transaction()

        async def lock() -> None:
            await transaction.start()
            await holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

        async def release() -> None:
            await transaction.rollback()

        try:
            await _stuck_store_then_redelivery(bot, lock, release, step)
        finally:
            await holder.close()


# Clients that are gone, slow or too big: a real server on a loopback port


class _Server(uvicorn.Server):
    """uvicorn as ``factory up`` runs it, minus signal handling (pytest keeps its own)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[int]:
    """Serve ``app`` with uvicorn on a free loopback port, in this event loop; yields the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = _Server(uvicorn.Config(app, log_config=None, lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await task
        sock.close()


async def start_request(
    port: int, headers: dict[str, str], content_length: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a connection and send a POST's head only; the caller sends (or not) the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"POST {PATH} HTTP/1.1", "Host: bot", f"Content-Length: {content_length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    return reader, writer


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line = await reader.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Records a user would see as a stack trace or an application error."""
    return [
        f"{record.name} {record.levelname}: {record.getMessage()}"
        for record in caplog.records
        if record.exc_info or record.levelno >= logging.ERROR or "Traceback" in record.getMessage()
    ]


async def wait_for_log(caplog: pytest.LogCaptureFixture, logger: str, text: str) -> None:
    for _ in range(300):
        if any(r.name == logger and text in r.getMessage() for r in caplog.records):
            return
        await asyncio.sleep(0.01)


@pytest.fixture
async def bot(
    tmp_path: Path, sqlite_url: str, redis_url: str, clean_env: None
) -> AsyncIterator[Bot]:
    # A body timeout of a second keeps the slow-client test short; the rest is the default.
    async with running_bot(
        tmp_path, sqlite_url, redis_url, IngressLimits(body_timeout_s=1.0)
    ) as bot:
        yield bot


async def test_a_client_that_disconnects_mid_body_leaves_one_info_line_and_nothing_recorded(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body = labeled_body()
    async with serving(bot.app) as port:
        _, writer = await start_request(port, signed_headers(body, "gone-1"), len(body))
        writer.write(body[: len(body) // 2])
        await writer.drain()
        await asyncio.sleep(0.2)  # the server is reading the body now
        writer.close()
        await writer.wait_closed()
        await wait_for_log(caplog, "webhooks.ingress", "disconnected")

    assert tracebacks(caplog) == []
    lines = [r for r in caplog.records if r.name == "webhooks.ingress"]
    assert [(r.levelname, r.getMessage().split(" ", 3)[3]) for r in lines] == [
        ("INFO", f"disconnected after {len(body) // 2} of {len(body)} body bytes: nothing recorded")
    ]
    assert await bot.rows() == []
    assert await bot.queued_job_ids() == []
    assert not bot.archived()


async def test_a_client_slower_than_the_body_timeout_gets_408(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body = labeled_body()
    async with serving(bot.app) as port:
        started = time.monotonic()
        reader, writer = await start_request(port, signed_headers(body, "slow-1"), len(body))

        async def trickle() -> None:
            # 20 bytes every 0.25 s; it would take minutes to send the whole body.
            for offset in range(0, len(body), 20):
                writer.write(body[offset : offset + 20])
                await writer.drain()
                await asyncio.sleep(0.25)

        sender = asyncio.create_task(trickle())
        try:
            status, headers, answer = await asyncio.wait_for(read_response(reader), 8)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
            writer.close()
        elapsed = time.monotonic() - started

    assert status == 408, answer
    assert headers["connection"] == "close"
    assert 0.9 < elapsed < 3, f"answered after {elapsed:.1f} s"
    assert tracebacks(caplog) == []
    [line] = [r for r in caplog.records if r.name == "webhooks.ingress"]
    assert line.levelname == "INFO" and "answered 408" in line.getMessage()
    assert await bot.rows() == []
    assert not bot.archived()


async def test_a_body_over_25_mb_gets_413_without_being_read(bot: Bot) -> None:
    too_big = 26 * 1024 * 1024
    body = labeled_body()
    async with serving(bot.app) as port:
        # Declared: the answer comes before a single body byte is sent.
        reader, writer = await start_request(port, signed_headers(body, "big-1"), too_big)
        try:
            status, headers, _ = await asyncio.wait_for(read_response(reader), 5)
        finally:
            writer.close()
    assert (status, headers["connection"]) == (413, "close")

    async def undeclared() -> AsyncIterator[bytes]:
        chunk = b" " * (1024 * 1024)
        for _ in range(too_big // len(chunk)):
            yield chunk

    # Chunked, no length given: counted as it arrives.
    streamed = await bot.client.post(
        PATH, content=undeclared(), headers=signed_headers(body, "big-2")
    )

    assert streamed.status_code == 413
    assert await bot.rows() == []
    assert not bot.archived()


# A delivery id used again for another body


async def test_a_reused_delivery_id_with_another_body_is_a_warned_duplicate_and_enqueues_nothing(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    original, forged = labeled_body(note="first"), labeled_body(note="SECRET-ISH second body")
    first, _ = await bot.deliver(original, "reused-1")
    assert first.status_code == 202
    # As a crash between record and enqueue leaves it: recorded, but no job in Redis. A
    # redelivery of the same body would enqueue it again (checked last), so the forged body
    # being answered without an enqueue is a decision, not an accident.
    job_id = "reused-1:feature_start:0"
    await bot.arq.zrem(bot.arq.default_queue_name, job_id)
    await bot.arq.delete(f"arq:job:{job_id}")
    caplog.set_level(logging.INFO)
    caplog.clear()

    reused, _ = await bot.deliver(forged, "reused-1")

    assert (reused.status_code, reused.json()["status"]) == (200, "duplicate")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert "reused-1" in message
    assert hashlib.sha256(original).hexdigest()[:12] in message
    assert hashlib.sha256(forged).hexdigest()[:12] in message
    assert all("SECRET-ISH" not in r.getMessage() for r in caplog.records)
    assert await bot.queued_job_ids() == []
    [row] = await bot.rows()
    assert (row.status, row.payload_sha256) == ("queued", hashlib.sha256(original).hexdigest())

    redelivered, _ = await bot.deliver(original, "reused-1")

    assert redelivered.json()["status"] == "duplicate"
    assert await bot.queued_job_ids() == [job_id]
