"""Webhook ingress end to end: signed real payloads in, delivery rows and arq jobs out.

Real SQLite (a file per test; the record-once tests also on PostgreSQL) and real Redis (a
database number claimed by each test and flushed after it, see conftest.py). Payloads are GitHub's documented examples from the shared fixtures,
changed only where a test needs a different sender, label or branch.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.jobs import Job
from fastapi import FastAPI
from githubkit.webhooks import sign
from sqlalchemy import select

from bot.db.database import Database
from bot.db.models import DeliveryStatus, Repository, WebhookDelivery
from bot.settings import Settings, load_settings
from webhooks import handlers
from webhooks.archive import PayloadArchive
from webhooks.ingress import MAX_BODY_BYTES, WEBHOOK_PATH, WebhookSecretMissing, webhook_router
from webhooks.payloads import Envelope
from webhooks.replay import ReplayError, replay
from webhooks.router import Ignore, Route, Router, on

# shared/ lies beside the checkout, for developers and CI alike.
FIXTURES = Path(
    os.environ.get(
        "FACTORY_WEBHOOK_FIXTURES",
        Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "webhooks",
    )
)
FIXTURE_FILES = sorted(FIXTURES.glob("*/*.json"))
SECRET = "test-webhook-secret"
APP_ID = 2  # the app id in the check_run fixtures
BOT = "agent-factory[bot]"


def fixture_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name.removesuffix('.payload.json')}"


def load(name: str) -> dict[str, Any]:
    """A fixture by event/name, e.g. ``issues/labeled`` or ``ping/payload``."""
    path = FIXTURES / f"{name}.payload.json"
    if not path.exists():
        path = FIXTURES / f"{name}.json"
    data: dict[str, Any] = json.loads(path.read_bytes())
    return data


def with_installation(data: dict[str, Any], installation_id: int = 31337) -> dict[str, Any]:
    data = copy.deepcopy(data)
    data["installation"] = {"id": installation_id, "node_id": "MDIzOkludGVncmF0aW9u"}
    return data


def sent_by(data: dict[str, Any], login: str, account_type: str) -> dict[str, Any]:
    data = copy.deepcopy(data)
    data["sender"] = {**data["sender"], "login": login, "type": account_type}
    return data


@dataclass
class Harness:
    client: httpx.AsyncClient
    arq: ArqRedis
    db: Database
    settings: Settings
    queue: str
    token: str
    sent: int = 0
    extra_clients: list[httpx.AsyncClient] = field(default_factory=list)

    def new_delivery_id(self) -> str:
        self.sent += 1
        return f"{self.token}-{self.sent}"

    async def send(
        self,
        event: str,
        payload: dict[str, Any] | bytes,
        *,
        delivery_id: str | None = None,
        secret: str | None = SECRET,
        signature: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id or self.new_delivery_id(),
            "Content-Type": "application/json",
        }
        if signature is None and secret is not None:
            signature = sign(secret, body)
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        return await (client or self.client).post(WEBHOOK_PATH, content=body, headers=headers)

    async def queued_jobs(self) -> list[Job]:
        ids = await self.arq.zrange(self.queue, 0, -1)
        return [Job(job_id.decode(), self.arq, _queue_name=self.queue) for job_id in ids]

    async def queued(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for job in await self.queued_jobs():
            info = await job.info()
            assert info is not None
            out.append((info.function, info.kwargs))
        return out

    async def rows(self) -> list[WebhookDelivery]:
        async with self.db.session() as session:
            result = await session.execute(
                select(WebhookDelivery).where(WebhookDelivery.delivery_id.like(f"%{self.token}%"))
            )
            return list(result.scalars())

    def app_for(self, arq: ArqRedis) -> httpx.AsyncClient:
        """Another server instance on the same database: a second replica."""
        app = FastAPI()
        app.include_router(webhook_router(settings=self.settings, db=self.db, arq=arq))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://hook")
        self.extra_clients.append(client)
        return client


def make_settings(tmp_path: Path, database_url: str, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_secret": SECRET,
        "app_id": APP_ID,
        "app_slug": "agent-factory",
        "trigger_label": "factory",
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "redis_url": redis_url,
        **overrides,
    }
    return load_settings(_env_file=None, **values)


@asynccontextmanager
async def open_harness(tmp_path: Path, database_url: str, redis_url: str) -> AsyncIterator[Harness]:
    settings = make_settings(tmp_path, database_url, redis_url)
    db = Database(database_url)
    await db.create_all()
    arq = await create_pool(RedisSettings.from_dsn(redis_url))
    app = FastAPI()
    app.include_router(webhook_router(settings=settings, db=db, arq=arq))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://hook")
    harness = Harness(client, arq, db, settings, arq.default_queue_name, uuid.uuid4().hex[:12])
    try:
        yield harness
    finally:
        for extra in [client, *harness.extra_clients]:
            await extra.aclose()
        await arq.aclose()
        await db.dispose()


@pytest.fixture
async def hook(
    tmp_path: Path, sqlite_url: str, redis_url: str, clean_env: None
) -> AsyncIterator[Harness]:
    """The ingress on SQLite and a Redis database of its own (flushed by ``redis_url``)."""
    async with open_harness(tmp_path, sqlite_url, redis_url) as harness:
        yield harness


@pytest.fixture
async def hook_each_db(
    tmp_path: Path, db_url: str, redis_url: str, clean_env: None
) -> AsyncIterator[Harness]:
    """The same on SQLite, then on PostgreSQL (skipped when none answers)."""
    async with open_harness(tmp_path, db_url, redis_url) as harness:
        yield harness


# Signatures and acceptance of every documented payload


def test_the_documented_payloads_are_there() -> None:
    events = {path.parent.name for path in FIXTURE_FILES}
    assert {"issues", "issue_comment", "pull_request", "push", "ping"} <= events, FIXTURES


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=fixture_id)
async def test_every_signed_fixture_is_accepted_and_explained(hook: Harness, path: Path) -> None:
    response = await hook.send(path.parent.name, path.read_bytes())

    assert response.status_code in (200, 202), response.text
    answer = response.json()
    assert answer["status"] in ("queued", "ignored")
    if answer["status"] == "ignored":
        assert answer["reason"]
        assert answer["jobs"] == []
    else:
        assert response.status_code == 202 and answer["jobs"]
    [row] = await hook.rows()
    assert (row.delivery_id, row.event, row.status) == (
        answer["delivery"],
        path.parent.name,
        answer["status"],
    )
    assert row.reason == answer.get("reason")


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=fixture_id)
async def test_unsigned_or_tampered_fixture_is_refused_and_not_recorded(
    hook: Harness, path: Path
) -> None:
    body = path.read_bytes()
    tampered = bytearray(body)
    tampered[len(body) // 2] ^= 0x01
    attempts = [
        await hook.send(path.parent.name, body, secret=None),
        await hook.send(path.parent.name, body, signature="sha256=" + "0" * 64),
        await hook.send(path.parent.name, body, secret="another-secret"),
        await hook.send(path.parent.name, bytes(tampered), signature=sign(SECRET, body)),
        # githubkit would check a sha1= value with SHA-1; only SHA-256 is accepted.
        await hook.send(path.parent.name, body, signature=sign(SECRET, body, "sha1")),
    ]

    assert [response.status_code for response in attempts] == [401] * len(attempts)
    assert await hook.rows() == []
    assert await hook.queued() == []
    assert not (hook.settings.data_dir / "deliveries").exists()


async def test_a_server_without_a_webhook_secret_refuses_to_serve(
    tmp_path: Path, sqlite_url: str, redis_url: str, clean_env: None
) -> None:
    settings = make_settings(tmp_path, sqlite_url, redis_url, webhook_secret=None)
    db = Database(sqlite_url)
    arq = ArqRedis.from_url(redis_url)
    try:
        with pytest.raises(WebhookSecretMissing, match="FACTORY_WEBHOOK_SECRET"):
            webhook_router(settings=settings, db=db, arq=arq)
    finally:
        await arq.aclose()
        await db.dispose()


# Record once


async def test_the_same_delivery_sent_three_times_at_once_is_queued_once(
    hook_each_db: Harness,
) -> None:
    hook = hook_each_db
    payload = with_installation(load("issues/labeled"))
    payload["label"]["name"] = "factory"
    delivery = hook.new_delivery_id()

    responses = await asyncio.gather(
        *(hook.send("issues", payload, delivery_id=delivery) for _ in range(3))
    )

    assert sorted(r.status_code for r in responses) == [200, 200, 202]
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["duplicate", "duplicate", "queued"]
    assert await hook.arq.zcard(hook.queue) == 1
    assert await hook.arq.exists(f"arq:job:{delivery}:feature_start:0") == 1
    [row] = await hook.rows()
    assert row.jobs == [f"{delivery}:feature_start:0"]


async def test_two_replicas_racing_on_one_delivery_queue_it_once(hook_each_db: Harness) -> None:
    hook = hook_each_db
    payload = with_installation(load("issues/labeled"))
    payload["label"]["name"] = "factory"
    other_replica = hook.app_for(hook.arq)
    delivery = hook.new_delivery_id()

    first, second = await asyncio.gather(
        hook.send("issues", payload, delivery_id=delivery),
        hook.send("issues", payload, delivery_id=delivery, client=other_replica),
    )

    assert sorted([first.json()["status"], second.json()["status"]]) == ["duplicate", "queued"]
    assert await hook.arq.zcard(hook.queue) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_redis_down_answers_503_and_the_redelivery_is_queued(hook_each_db: Harness) -> None:
    hook = hook_each_db
    payload = with_installation(load("issues/labeled"))
    payload["label"]["name"] = "factory"
    delivery = hook.new_delivery_id()
    dead_redis = ArqRedis(host="127.0.0.1", port=_closed_port())
    server_without_redis = hook.app_for(dead_redis)

    try:
        down = await hook.send("issues", payload, delivery_id=delivery, client=server_without_redis)
    finally:
        await dead_redis.aclose()

    assert down.status_code == 503
    assert "enqueue failed" in down.json()["error"]
    [row] = await hook.rows()
    assert row.status == "failed"
    assert await hook.arq.zcard(hook.queue) == 0

    redelivered = await hook.send("issues", payload, delivery_id=delivery)

    assert redelivered.status_code == 202
    assert redelivered.json()["status"] == "queued"
    [row] = await hook.rows()
    assert row.status == "queued"
    assert await hook.queued() == [("feature_start", _feature_start_kwargs(delivery))]
    again = await hook.send("issues", payload, delivery_id=delivery)
    assert again.json()["status"] == "duplicate"


# Never loop on bots


@pytest.mark.parametrize(
    ("login", "account_type"),
    [("ci-helper[bot]", "Bot"), (BOT, "Bot"), ("renovate[bot]", "User"), ("machine", "Bot")],
)
async def test_bots_commands_and_labels_queue_nothing(
    hook: Harness, login: str, account_type: str
) -> None:
    comment = with_installation(load("issue_comment/created"))
    comment["comment"]["body"] = "/factory plan"
    labeled = with_installation(load("issues/labeled"))
    labeled["label"]["name"] = "factory"

    answers = [
        await hook.send("issue_comment", sent_by(comment, login, account_type)),
        await hook.send("issues", sent_by(labeled, login, account_type)),
    ]

    assert [a.status_code for a in answers] == [200, 200]
    assert [a.json()["reason"] for a in answers] == [f"sender {login} is a bot"] * 2
    assert await hook.queued() == []


# Routing: what each event asks the workers to do


def _feature_start_kwargs(delivery: str) -> dict[str, Any]:
    return {
        "installation_id": 31337,
        "repo": "Codertocat/Hello-World",
        "issue_number": 1,
        "sender": "Codertocat",
        "sender_type": "User",
        "delivery_id": delivery,
    }


async def test_the_trigger_label_queues_feature_start_with_its_arguments(hook: Harness) -> None:
    payload = with_installation(load("issues/labeled"))
    payload["label"]["name"] = "Factory"  # label names match regardless of case
    delivery = hook.new_delivery_id()

    response = await hook.send("issues", payload, delivery_id=delivery)

    assert response.status_code == 202
    assert response.json() == {
        "delivery": delivery,
        "status": "queued",
        "jobs": [f"{delivery}:feature_start:0"],
    }
    info = await Job(f"{delivery}:feature_start:0", hook.arq, _queue_name=hook.queue).info()
    assert info is not None
    assert (info.function, info.args, info.kwargs) == (
        "feature_start",
        (),
        _feature_start_kwargs(delivery),
    )


async def test_other_labels_are_ignored_with_the_reason(hook: Harness) -> None:
    response = await hook.send("issues", with_installation(load("issues/labeled")))

    assert response.status_code == 200
    assert response.json()["reason"] == "label 'bug' is not the trigger label 'factory'"
    assert await hook.queued() == []


async def test_a_repository_trigger_label_overrides_the_default(hook: Harness) -> None:
    async with hook.db.session() as session:
        session.add(Repository(id=1, full_name="Codertocat/Hello-World", trigger_label="bug"))
        session.add(Repository(id=2, full_name="octo-org/unset", trigger_label=None))
    bug = with_installation(load("issues/labeled"))
    default_label = copy.deepcopy(bug)
    default_label["label"]["name"] = "factory"
    unset_repo = copy.deepcopy(default_label)
    unset_repo["repository"]["full_name"] = "octo-org/unset"

    answers = [
        (await hook.send("issues", bug)).json(),
        (await hook.send("issues", default_label)).json(),
        (await hook.send("issues", unset_repo)).json(),
    ]

    assert [a["status"] for a in answers] == ["queued", "ignored", "queued"]
    assert answers[1]["reason"] == "label 'factory' is not the trigger label 'bug'"


def _bot_pr(data: dict[str, Any], *, by_author: bool = False) -> dict[str, Any]:
    data = with_installation(data)
    if by_author:
        data["pull_request"]["user"]["login"] = BOT
    else:
        data["pull_request"]["head"]["ref"] = "factory/issue-1"
    return data


def _with(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, last = path.split(".")
    target = data
    for part in parents:
        target = target[part]
    target[last] = value
    return data


@dataclass(frozen=True)
class RouteCase:
    name: str
    event: str
    payload: Callable[[], dict[str, Any]]
    function: str | None
    expected: dict[str, Any] | str  # job kwargs (minus delivery_id) or the ignore reason


def _pr_comment_command() -> dict[str, Any]:
    data = with_installation(load("issue_comment/created"))
    data["issue"]["pull_request"] = {"url": "https://api.github.com/repos/x/y/pulls/1"}
    data["comment"]["body"] = "Thanks!\n\n/FACTORY retry tests\n"
    return data


def _installation_repositories() -> dict[str, Any]:
    data = load("installation/created")
    data["action"] = "removed"
    data["repository_selection"] = "selected"
    data["repositories_added"] = []
    data["repositories_removed"] = data.pop("repositories")
    return data


ROUTE_CASES = [
    RouteCase(
        "issue command",
        "issue_comment",
        lambda: _with(
            with_installation(load("issue_comment/created")), "comment.body", "/factory plan"
        ),
        "command_received",
        {
            "installation_id": 31337,
            "repo": "Codertocat/Hello-World",
            "issue_number": 1,
            "is_pull_request": False,
            "comment_id": 492700400,
            "comment_kind": "issue",
            "body": "/factory plan",
            "sender": "Codertocat",
            "sender_type": "User",
        },
    ),
    RouteCase(
        "pull request command",
        "issue_comment",
        _pr_comment_command,
        "command_received",
        {
            "installation_id": 31337,
            "repo": "Codertocat/Hello-World",
            "issue_number": 1,
            "is_pull_request": True,
            "comment_id": 492700400,
            "comment_kind": "issue",
            "body": "Thanks!\n\n/FACTORY retry tests\n",
            "sender": "Codertocat",
            "sender_type": "User",
        },
    ),
    RouteCase(
        "command in a code block or a quote",
        "issue_comment",
        lambda: _with(
            with_installation(load("issue_comment/created")),
            "comment.body",
            "```\n/factory plan\n```\n> /factory approve\n",
        ),
        None,
        "comment has no /factory command",
    ),
    RouteCase(
        "edited comment",
        "issue_comment",
        lambda: _with(load("issue_comment/edited"), "comment.body", "/factory plan"),
        None,
        "edited comments are not re-run; post a new comment to run a command again",
    ),
    RouteCase(
        "review comment command",
        "pull_request_review_comment",
        lambda: _with(
            with_installation(load("pull_request_review_comment/created")),
            "comment.body",
            "/factory fix this",
        ),
        "command_received",
        {
            "installation_id": 31337,
            "repo": "Codertocat/Hello-World",
            "issue_number": 2,
            "is_pull_request": True,
            "comment_id": 284312630,
            "comment_kind": "review",
            "body": "/factory fix this",
            "sender": "Codertocat",
            "sender_type": "User",
        },
    ),
    RouteCase(
        "review comment on a bot PR",
        "pull_request_review_comment",
        lambda: _bot_pr(load("pull_request_review_comment/created")),
        "review_comment_created",
        {
            "installation_id": 31337,
            "repo": "Codertocat/Hello-World",
            "pr_number": 2,
            "comment_id": 284312630,
            "in_reply_to_id": None,
            "body": "Maybe you should use more emoji on this line.",
            "path": "README.md",
            "line": 265,
            "author": "Codertocat",
            "author_type": "User",
        },
    ),
    RouteCase(
        "review comment on a human PR",
        "pull_request_review_comment",
        lambda: with_installation(load("pull_request_review_comment/created")),
        None,
        "review comment on a pull request the bot did not open",
    ),
    RouteCase(
        "review on a bot PR",
        "pull_request_review",
        lambda: _bot_pr(load("pull_request_review/submitted"), by_author=True),
        "review_submitted",
        {
            "installation_id": 31337,
            "repo": "Codertocat/Hello-World",
            "pr_number": 2,
            "review_id": 237895671,
            "state": "commented",
            "body": None,
            "reviewer": "Codertocat",
            "reviewer_type": "User",
        },
    ),
    RouteCase(
        "review by an outsider on a bot PR",
        "pull_request_review",
        lambda: _with(
            _bot_pr(load("pull_request_review/submitted"), by_author=True),
            "review.author_association",
            "FIRST_TIME_CONTRIBUTOR",
        ),
        None,
        "review by Codertocat (author association FIRST_TIME_CONTRIBUTOR) cannot steer a run: "
        "only people with write access can",
    ),
    RouteCase(
        "review comment by an outsider on a bot PR",
        "pull_request_review_comment",
        lambda: _with(
            _bot_pr(load("pull_request_review_comment/created")),
            "comment.author_association",
            "NONE",
        ),
        None,
        "review comment by Codertocat (author association NONE) cannot steer a run: "
        "only people with write access can",
    ),
    RouteCase(
        "review on a human PR",
        "pull_request_review",
        lambda: load("pull_request_review/submitted"),
        None,
        "review on a pull request the bot did not open",
    ),
    RouteCase(
        "bot PR merged",
        "pull_request",
        lambda: _with(_bot_pr(load("pull_request/closed")), "pull_request.merged", True),
        "pr_closed",
        {
            "installation_id": 31337,
            "repo": "Codertocat/Hello-World",
            "pr_number": 2,
            "merged": True,
            "head_ref": "factory/issue-1",
        },
    ),
    RouteCase(
        "human PR closed",
        "pull_request",
        lambda: load("pull_request/closed"),
        None,
        "closed pull request was not opened by the bot",
    ),
    RouteCase(
        "bot PR synchronized",
        "pull_request",
        lambda: _bot_pr(load("pull_request/synchronize"), by_author=True),
        "pr_synchronized",
        {
            "installation_id": 31337,
            "repo": "Codertocat/Hello-World",
            "pr_number": 2,
            "head_sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            "sender": "Codertocat",
        },
    ),
    RouteCase(
        "our check run re-run",
        "check_run",
        lambda: load("check_run/rerequested"),
        "check_rerequested",
        {
            "installation_id": 1,
            "repo": "github/hello-world",
            "check_run_id": 4,
            "name": "randscape",
            "head_sha": "d6fde92930d4715a2b49857d24b940956b26d2d3",
            "external_id": "",
            "action_identifier": None,
            "sender": "octocat",
            "sender_type": "User",
        },
    ),
    RouteCase(
        "requested action on an Agent Factory check",
        "check_run",
        lambda: _with(
            _with(
                _with(load("check_run/rerequested"), "action", "requested_action"),
                "requested_action",
                {"identifier": "retry"},
            ),
            "check_run",
            {
                **load("check_run/rerequested")["check_run"],
                "name": "Agent Factory / tests",
                "app": {"id": 99},
            },
        ),
        "check_rerequested",
        {
            "installation_id": 1,
            "repo": "github/hello-world",
            "check_run_id": 4,
            "name": "Agent Factory / tests",
            "head_sha": "d6fde92930d4715a2b49857d24b940956b26d2d3",
            "external_id": "",
            "action_identifier": "retry",
            "sender": "octocat",
            "sender_type": "User",
        },
    ),
    RouteCase(
        "another app's check run",
        "check_run",
        lambda: _with(load("check_run/rerequested"), "check_run.app", {"id": 99}),
        None,
        "check run 'randscape' belongs to another app",
    ),
    RouteCase(
        "our check suite re-run by a person",
        "check_suite",
        lambda: _with(
            sent_by(load("check_suite/rerequested"), "Codertocat", "User"),
            "check_suite.app",
            {"id": APP_ID},
        ),
        "check_suite_rerequested",
        {
            "installation_id": 957387,
            "repo": "Codertocat/Hello-World",
            "head_sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            "sender": "Codertocat",
            "sender_type": "User",
        },
    ),
    RouteCase(
        "workflow run completed after the bot's own push",
        "workflow_run",
        lambda: sent_by(with_installation(load("workflow_run/completed")), BOT, "Bot"),
        "workflow_run_completed",
        {
            "installation_id": 31337,
            "repo": "octo-org/octo-repo",
            "run_id": 289782451,
            "workflow_id": 2823525,
            "name": "",
            "path": ".github/workflows/test.yml",
            "head_branch": "master",
            "head_sha": "3484a3fb816e0859fd6e1cea078d76385ff50625",
            "conclusion": "success",
            "event": "repository_dispatch",
            "sender": BOT,
            "sender_type": "Bot",
        },
    ),
    RouteCase(
        "workflow run by a person on a branch the bot did not push",
        "workflow_run",
        lambda: with_installation(load("workflow_run/completed")),
        None,
        "workflow run on 'master' by Codertocat: the bot follows only its own runs and its branches",
    ),
    RouteCase(
        "workflow run of another bot",
        "workflow_run",
        lambda: sent_by(
            with_installation(load("workflow_run/completed")), "dependabot[bot]", "Bot"
        ),
        None,
        "sender dependabot[bot] is a bot",
    ),
    RouteCase(
        "push to the default branch",
        "push",
        lambda: _with(
            load("push/with-new-branch"),
            "commits",
            [
                {"added": ["a.py"], "modified": ["README.md"], "removed": []},
                {"added": ["b.py", "a.py"], "modified": [], "removed": ["old.py"]},
            ],
        ),
        "knowledge_refresh",
        {
            "installation_id": 1,
            "repo": "Codertocat/Hello-World",
            "before": "0000000000000000000000000000000000000000",
            "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "added": ["a.py", "b.py"],
            "modified": ["README.md"],
            "removed": ["old.py"],
        },
    ),
    RouteCase(
        "push of a tag",
        "push",
        lambda: load("push/with-installation"),
        None,
        "push to refs/tags/simple-tag, not the default branch 'master'",
    ),
    RouteCase(
        "app installed",
        "installation",
        lambda: load("installation/created"),
        "installation_changed",
        {
            "installation_id": 957387,
            "action": "created",
            "account": "Codertocat",
            "repositories_added": [{"id": 186853002, "full_name": "Codertocat/Hello-World"}],
            "repositories_removed": [],
        },
    ),
    RouteCase(
        "repositories removed from the installation",
        "installation_repositories",
        _installation_repositories,
        "installation_changed",
        {
            "installation_id": 957387,
            "action": "removed",
            "account": "Codertocat",
            "repositories_added": [],
            "repositories_removed": [{"id": 186853002, "full_name": "Codertocat/Hello-World"}],
        },
    ),
    RouteCase(
        "ping",
        "ping",
        lambda: load("ping/with-app_id"),
        None,
        "ping: hook configured",
    ),
    RouteCase(
        "an event nobody routes",
        "issues",
        lambda: with_installation(load("issues/opened")),
        None,
        "no handler for issues.opened",
    ),
    RouteCase(
        "a routed event outside an installation",
        "issues",
        lambda: _with(load("issues/labeled"), "label.name", "factory"),
        None,
        "issues.labeled carries no installation: not a delivery to this GitHub App",
    ),
]


@pytest.mark.parametrize("case", ROUTE_CASES, ids=lambda case: case.name)
async def test_route(hook: Harness, case: RouteCase) -> None:
    delivery = hook.new_delivery_id()

    response = await hook.send(case.event, case.payload(), delivery_id=delivery)

    answer = response.json()
    if case.function is None:
        assert (response.status_code, answer["status"]) == (200, "ignored")
        assert answer["reason"] == case.expected
        assert await hook.queued() == []
    else:
        assert (response.status_code, answer["status"]) == (202, "queued"), answer
        assert isinstance(case.expected, dict)
        expected = {**case.expected, "delivery_id": delivery}
        assert await hook.queued() == [(case.function, expected)]
        assert answer["jobs"] == [f"{delivery}:{case.function}:0"]


# Refusals that explain themselves


async def test_bad_payloads_get_400_with_the_reason_and_no_record(hook: Harness) -> None:
    no_issue = with_installation(load("issues/labeled"))
    del no_issue["issue"]

    answers = [
        await hook.send("issues", b"{not json"),
        await hook.send("issues", b"[1, 2]"),
        await hook.send("issues", no_issue),
        await hook.send("no_such_event", load("ping/payload")),
    ]

    assert [a.status_code for a in answers] == [400] * 4
    errors = [a.json()["error"] for a in answers]
    assert errors[0].startswith("malformed JSON")
    assert errors[1] == "payload is not a JSON object"
    assert errors[2] == "payload does not fit issues.labeled: issue: Field required"
    assert errors[3] == "unknown event 'no_such_event'"
    assert await hook.rows() == []


async def test_missing_or_unsafe_headers_get_400(hook: Harness) -> None:
    body = (FIXTURES / "ping/payload.json").read_bytes()
    signed = {"X-Hub-Signature-256": sign(SECRET, body)}

    no_event = await hook.client.post(
        WEBHOOK_PATH, content=body, headers={**signed, "X-GitHub-Delivery": "abc"}
    )
    traversal = await hook.send("ping", body, delivery_id="../../etc/passwd")

    assert no_event.status_code == 400
    assert traversal.status_code == 400
    assert await hook.rows() == []


async def test_oversized_payloads_get_413_before_anything_else(hook: Harness) -> None:
    declared = await hook.client.post(
        WEBHOOK_PATH,
        content=b"{}",
        headers={"Content-Length": str(MAX_BODY_BYTES + 1), "X-GitHub-Event": "ping"},
    )

    async def stream() -> AsyncIterator[bytes]:
        chunk = b" " * (1024 * 1024)
        for _ in range(MAX_BODY_BYTES // len(chunk) + 1):
            yield chunk

    chunked = await hook.client.post(
        WEBHOOK_PATH, content=stream(), headers={"X-GitHub-Event": "ping"}
    )

    assert (declared.status_code, chunked.status_code) == (413, 413)


# Replay


async def test_replay_runs_a_recorded_delivery_again_under_a_new_id(hook: Harness) -> None:
    payload = with_installation(load("issues/labeled"))
    payload["label"]["name"] = "factory"
    original = hook.new_delivery_id()
    await hook.send("issues", payload, delivery_id=original)

    first = await replay(settings=hook.settings, db=hook.db, arq=hook.arq, delivery_id=original)
    second = await replay(settings=hook.settings, db=hook.db, arq=hook.arq, delivery_id=original)

    assert (first.delivery_id, second.delivery_id) == (
        f"replay-{original}-1",
        f"replay-{original}-2",
    )
    assert first.outcome.status == "queued"
    assert first.outcome.jobs == [f"replay-{original}-1:feature_start:0"]
    queued = sorted((function, kwargs["delivery_id"]) for function, kwargs in await hook.queued())
    assert queued == [
        ("feature_start", original),
        ("feature_start", f"replay-{original}-1"),
        ("feature_start", f"replay-{original}-2"),
    ]


async def test_replay_of_a_payload_file_and_its_refusals(hook: Harness, tmp_path: Path) -> None:
    payload_file = tmp_path / "labeled.json"
    payload_file.write_text(
        json.dumps(_with(with_installation(load("issues/labeled")), "label.name", "factory"))
    )

    outcome = await replay(
        settings=hook.settings, db=hook.db, arq=hook.arq, payload_path=payload_file, event="issues"
    )

    assert outcome.delivery_id.startswith("replay-file-") and outcome.delivery_id.endswith("-1")
    assert outcome.outcome.status == "queued"
    with pytest.raises(ReplayError, match="event name"):
        await replay(settings=hook.settings, db=hook.db, arq=hook.arq, payload_path=payload_file)
    with pytest.raises(ReplayError, match="no delivery 'nope' was recorded"):
        await replay(settings=hook.settings, db=hook.db, arq=hook.arq, delivery_id="nope")
    ignored = hook.new_delivery_id()
    await hook.send("ping", load("ping/payload"), delivery_id=ignored)
    for segment in (hook.settings.data_dir / "deliveries").iterdir():
        segment.unlink()
    with pytest.raises(ReplayError, match="no longer archived"):
        await replay(settings=hook.settings, db=hook.db, arq=hook.arq, delivery_id=ignored)


def test_the_archive_finds_bodies_by_delivery_and_prunes_old_days(tmp_path: Path) -> None:
    archive = PayloadArchive(tmp_path / "deliveries", keep_days=7)
    twenty_days_ago = time.time() - 20 * 86400
    archive.save("old", "ping", b'{"old": 1}', now=twenty_days_ago)
    assert archive.load("old") == b'{"old": 1}'

    bodies = {f"d{n}": json.dumps({"n": n, "text": "line\n" * n}).encode() for n in range(3)}
    for delivery_id, body in bodies.items():
        archive.save(delivery_id, "issues", body)

    assert {d: archive.load(d) for d in bodies} == bodies
    assert archive.load("old") is None  # its day was pruned when a new day began
    assert archive.load("missing") is None
    [segment] = (tmp_path / "deliveries").iterdir()
    assert segment.stat().st_mode & 0o777 == 0o600


# The route table itself


def test_every_declared_route_is_registered() -> None:
    declared = {value for value in vars(handlers).values() if isinstance(value, Route)}

    assert declared == set(handlers.ROUTES)
    assert handlers.build_router().keys() >= {"issues.labeled", "push", "ping"}


def test_route_declarations_are_checked() -> None:
    async def nothing(ctx: Any, env: Any) -> Ignore:
        return Ignore("nothing")

    with pytest.raises(ValueError, match="not a GitHub webhook event"):
        on("isues.labeled", payload=Envelope)(nothing)
    route = on("push", payload=Envelope)(nothing)
    with pytest.raises(ValueError, match="two routes for 'push'"):
        Router([route, route])
    router = Router([route])
    assert router.route_for("push", None) is route
    assert router.route_for("push", "anything") is route
    assert router.route_for("issues", "opened") is None


async def test_a_redelivery_enqueues_the_jobs_a_crash_left_unqueued(
    tmp_path: Path, redis_url: str
) -> None:
    """The row is recorded but the process died before enqueueing: GitHub's redelivery
    (answered "duplicate") still gets the work queued, exactly once."""
    from arq.jobs import Job, JobStatus

    from bot.db.database import Database
    from bot.queue import create_arq_pool
    from bot.settings import load_settings
    from webhooks.deliveries import DeliveryLog, DeliveryRecord
    from webhooks.pipeline import build_processor

    settings = load_settings(
        _env_file=None, data_dir=tmp_path, webhook_secret="s", trigger_label="bug"
    )
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'f.db'}")
    await db.create_all()
    pool = await create_arq_pool(redis_url)
    payload = json.loads((FIXTURES / "issues" / "labeled.payload.json").read_bytes())
    payload["installation"] = {"id": 7, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNw=="}
    body = json.dumps(payload).encode()
    try:
        processor = build_processor(settings=settings, db=db, arq=pool)
        # What a crash after the record and before the enqueue leaves behind:
        job_id = "crashed-1:feature_start:0"
        await DeliveryLog(db).claim(
            DeliveryRecord(
                delivery_id="crashed-1",
                event="issues",
                action="labeled",
                installation_id=7,
                repository=payload["repository"]["full_name"],
                sender=payload["sender"]["login"],
                payload_sha256=hashlib.sha256(body).hexdigest(),
                status=DeliveryStatus.QUEUED,
                reason=None,
                jobs=[job_id],
            )
        )
        assert await Job(job_id, pool).status() is JobStatus.not_found
        outcome = await processor.process(event="issues", delivery_id="crashed-1", body=body)
        assert outcome.status is DeliveryStatus.DUPLICATE
        assert await Job(job_id, pool).status() is JobStatus.queued
        again = await processor.process(event="issues", delivery_id="crashed-1", body=body)
        assert again.status is DeliveryStatus.DUPLICATE
        assert await pool.zcard("arq:queue") == 1
    finally:
        await pool.aclose()
        await db.dispose()
