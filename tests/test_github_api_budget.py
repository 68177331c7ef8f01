"""What each GitHub read costs: lists past GitHub's 100-item pages, conditional requests
(304s cost no rate limit and never hide a change), check runs looked up once for all names,
the status comment edited by id, repository metadata passed along, and reads at a commit
remembered. Against the fake GitHub over loopback HTTP and real Redis."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from bot.github import GitHubApp, RepoClient
from bot.github.conditional import ConditionalTransport, EtagStore
from bot.github.models import repo_info_from_payload
from tests.fakegithub import BOT_LOGIN, FakeGitHub, serve

REPO = "octo-org/demo"
FILES = {"README.md": "# demo\n", "src/app.py": "print('hi')\n"}
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "webhooks"
MANY = 150  # more than one page of 100


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(tmp_path_factory.mktemp("github"))
    fake.add_installation("octo-org")
    fake.create_repo("octo-org", "demo", FILES)
    with serve(fake):
        yield fake


class Calls:
    """The requests the fake answered from the start of one test."""

    def __init__(self, fake: FakeGitHub) -> None:
        self.fake = fake
        self.start = len(fake.requests)

    def __call__(self, method: str, route: str) -> list[int]:
        """Statuses answered for ``method`` on ``route`` (a template such as
        ``/repos/{owner}/{repo}/issues/{number}``)."""
        return [
            r.status
            for r in self.fake.requests[self.start :]
            if r.method == method and r.route == route
        ]


@pytest.fixture
def calls(fake: FakeGitHub) -> Calls:
    return Calls(fake)


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    yield client
    await client.aclose()


@pytest.fixture
async def key_prefix(redis: aioredis.Redis) -> AsyncIterator[str]:
    prefix = f"test-github-budget:{uuid.uuid4().hex}"
    yield prefix
    keys = [key async for key in redis.scan_iter(f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def apps(
    fake: FakeGitHub, redis: aioredis.Redis, key_prefix: str
) -> AsyncIterator[list[GitHubApp]]:
    """Two workers' GitHubApps sharing Redis, as two processes would."""
    made = [
        GitHubApp(
            fake.app_id,
            fake.private_key_pem,
            base_url=fake.api_url,
            redis=redis,
            key_prefix=key_prefix,
        )
        for _ in range(2)
    ]
    yield made
    for app in made:
        await app.aclose()


@pytest.fixture
def installation(fake: FakeGitHub) -> int:
    return next(iter(fake.store.installations))


@pytest.fixture
async def client(apps: list[GitHubApp], installation: int) -> RepoClient:
    return await apps[0].repo_client(installation, "octo-org", "demo")


COMMENTS = "/repos/{owner}/{repo}/issues/{number}/comments"
ISSUE = "/repos/{owner}/{repo}/issues/{number}"
CONTENTS = "/repos/{owner}/{repo}/contents/{path}"
CHECK_RUNS = "/repos/{owner}/{repo}/commits/{ref}/check-runs"


# -- Past GitHub's page of 100 ---------------------------------------------------------------


async def test_every_comment_past_the_first_hundred_is_read(
    calls: Calls, client: RepoClient, fake: FakeGitHub
) -> None:
    number = fake.create_issue(REPO, "Busy issue")
    for i in range(MANY):
        fake.comment(REPO, number, f"comment {i}", user="alice")

    comments = await client.list_issue_comments(number)
    again = await client.list_issue_comments(number)

    assert [c.body for c in comments] == [f"comment {i}" for i in range(MANY)]
    assert again == comments
    # Two pages, then the same two pages revalidated: nothing counted against the rate limit.
    assert calls("GET", COMMENTS) == [200, 200, 304, 304]


async def test_every_file_of_a_pull_request_past_the_first_hundred_is_read(
    calls: Calls, client: RepoClient, fake: FakeGitHub
) -> None:
    files = {f"pkg/module_{i:03}.py": f"VALUE = {i}\n" for i in range(MANY)}
    fake.push_files(REPO, "many-files", files)
    pr = fake.open_pr(REPO, "many-files", title="Many files")

    listed = await client.list_pull_request_files(pr)

    assert sorted(f.filename for f in listed) == sorted(files)
    assert all(f.status == "added" and f.patch for f in listed)
    assert calls("GET", "/repos/{owner}/{repo}/pulls/{number}/files") == [200, 200]


async def test_every_review_past_the_first_hundred_is_read(
    calls: Calls, client: RepoClient, fake: FakeGitHub
) -> None:
    fake.push_files(REPO, "many-reviews", {"NOTE.md": "note\n"})
    pr = fake.open_pr(REPO, "many-reviews", title="Many reviews")
    for i in range(MANY):
        fake.submit_review(REPO, pr, "bob", "COMMENT", body=f"review {i}")

    reviews = await client.list_reviews(pr)

    assert [r.body for r in reviews] == [f"review {i}" for i in range(MANY)]
    assert {r.author for r in reviews} == {"bob"}
    assert calls("GET", "/repos/{owner}/{repo}/pulls/{number}/reviews") == [200, 200]


async def test_every_check_run_on_a_commit_is_listed_in_one_request_per_hundred(
    calls: Calls, client: RepoClient, fake: FakeGitHub
) -> None:
    sha = fake.push_files(REPO, "many-checks", {"CHECKS.md": "checks\n"})
    for i in range(MANY):
        await client.create_check_run(f"check {i:03}", sha, status="queued")
    renamed = await client.update_check_run(
        (await client.create_check_run("check 000", sha)).id, conclusion="success"
    )

    runs = await client.list_check_runs(sha)
    unchanged = await client.list_check_runs(sha)

    # The latest run of each name: 150 names, "check 000" as its newer run.
    assert len(runs) == MANY and len({r.name for r in runs}) == MANY
    assert next(r for r in runs if r.name == "check 000") == renamed
    assert unchanged == runs
    assert calls("GET", CHECK_RUNS) == [200, 200, 304, 304]


# -- Conditional requests ----------------------------------------------------------------------


async def test_a_repeated_read_costs_no_rate_limit_and_a_change_is_seen_at_once(
    calls: Calls, client: RepoClient, fake: FakeGitHub
) -> None:
    number = fake.create_issue(REPO, "Before")

    first = await client.get_issue(number)
    second = await client.get_issue(number)
    fake.issue(REPO, number).title = "After"
    third = await client.get_issue(number)

    assert first == second and first.title == "Before"
    assert third.title == "After"
    assert calls("GET", ISSUE) == [200, 304, 200]


async def test_a_write_by_another_worker_is_seen_by_the_next_read(
    calls: Calls, apps: list[GitHubApp], installation: int, fake: FakeGitHub
) -> None:
    number = fake.create_issue(REPO, "Two workers")
    one = await apps[0].repo_client(installation, "octo-org", "demo")
    two = await apps[1].repo_client(installation, "octo-org", "demo")

    assert await one.list_issue_comments(number) == ()
    assert await two.list_issue_comments(number) == ()  # the first worker's ETag: 304
    posted = await two.create_comment(number, "from worker two")
    seen = await one.list_issue_comments(number)

    assert [c.id for c in seen] == [posted.id]
    assert calls("GET", COMMENTS) == [200, 304, 200]


async def test_what_is_remembered_holds_no_token(
    client: RepoClient,
    apps: list[GitHubApp],
    installation: int,
    redis: aioredis.Redis,
    key_prefix: str,
    fake: FakeGitHub,
) -> None:
    number = fake.create_issue(REPO, "Secrets stay out")
    await client.get_issue(number)
    await client.get_file("README.md", ref=fake.branch_sha(REPO, "main"))
    token = (await apps[0].installation_token(installation)).token

    remembered = [
        key
        async for key in redis.scan_iter(f"{key_prefix}:*")
        if not key.endswith(b":token") and not key.endswith(b":identity")
    ]
    values = [await redis.get(key) for key in remembered]

    assert len(remembered) >= 2
    assert all(v is not None and token.encode() not in v for v in values)
    assert not any(b"authorization" in (v or b"").lower() for v in values)


async def test_conditional_requests_can_be_switched_off(
    calls: Calls, fake: FakeGitHub, redis: aioredis.Redis, key_prefix: str, installation: int
) -> None:
    app = GitHubApp(
        fake.app_id,
        fake.private_key_pem,
        base_url=fake.api_url,
        redis=redis,
        key_prefix=key_prefix,
        conditional_requests=False,
    )
    try:
        client = await app.repo_client(installation, "octo-org", "demo")
        number = fake.create_issue(REPO, "Unconditional")
        await client.get_issue(number)
        await client.get_issue(number)
    finally:
        await app.aclose()

    assert calls("GET", ISSUE) == [200, 200]


# -- Files that may be missing ----------------------------------------------------------------


async def test_a_file_read_at_a_commit_is_asked_for_once_missing_or_not(
    calls: Calls, apps: list[GitHubApp], installation: int, fake: FakeGitHub
) -> None:
    sha = fake.push_files(REPO, "fixed-reads", {"src/app.py": "print('fixed')\n"})
    one = await apps[0].repo_client(installation, "octo-org", "demo")
    two = await apps[1].repo_client(installation, "octo-org", "demo")

    missing = [await c.get_file(".github/factory.yml", ref=sha) for c in (one, two, one)]
    present = [await c.get_file("src/app.py", ref=sha) for c in (one, two)]

    assert missing == [None, None, None]
    assert present[0] is not None and present[0] == present[1]
    assert present[0].text == "print('fixed')\n" and present[0].ref == sha
    # What a commit holds never changes: one request each, shared by both workers.
    assert calls("GET", CONTENTS) == [404, 200]


async def test_a_file_read_on_a_branch_is_asked_for_each_time(
    calls: Calls, client: RepoClient, fake: FakeGitHub
) -> None:
    assert await client.get_file(".github/factory.yml", ref="main") is None
    fake.push_files(REPO, "main", {".github/factory.yml": "version: 1\n"}, start="main")
    found = await client.get_file(".github/factory.yml", ref="main")
    same = await client.get_file(".github/factory.yml", ref="main")

    assert found is not None and found == same and found.text == "version: 1\n"
    # A 404 has no validator (as on GitHub); an unchanged file is a 304.
    assert calls("GET", CONTENTS) == [404, 200, 304]
    fake.push_files(REPO, "main", {".github/factory.yml": None}, start="main")


# -- Status comment and repository metadata ----------------------------------------------------


async def test_a_known_status_comment_is_edited_without_listing_comments(
    calls: Calls, client: RepoClient, fake: FakeGitHub
) -> None:
    number = fake.create_issue(REPO, "Status by id")
    first = await client.upsert_marked_comment(number, "factory:status", "Planning…")
    edited = await client.upsert_marked_comment(
        number, "factory:status", "Coding…", comment_id=first.id
    )

    [comment] = fake.comments(REPO, number)
    assert edited.id == first.id == comment.id and comment.user.login == BOT_LOGIN
    assert comment.body == "<!-- factory:status -->\nCoding…"
    assert calls("GET", COMMENTS) == [200]  # only to find it the first time
    assert calls("PATCH", "/repos/{owner}/{repo}/issues/comments/{id}") == [200]


async def test_a_deleted_status_comment_is_made_again(client: RepoClient, fake: FakeGitHub) -> None:
    number = fake.create_issue(REPO, "Status deleted")
    first = await client.upsert_marked_comment(number, "factory:status", "Planning…")
    await client.gh.rest.issues.async_delete_comment("octo-org", "demo", first.id)

    again = await client.upsert_marked_comment(
        number, "factory:status", "Coding…", comment_id=first.id
    )

    [comment] = fake.comments(REPO, number)
    assert again.id == comment.id != first.id
    assert comment.body == "<!-- factory:status -->\nCoding…"


async def test_repository_metadata_is_read_once_per_client_or_taken_from_the_webhook(
    calls: Calls, apps: list[GitHubApp], installation: int, fake: FakeGitHub
) -> None:
    payload: dict[str, Any] = json.loads((FIXTURES / "issues" / "labeled.payload.json").read_text())
    known = repo_info_from_payload(payload["repository"])
    given = await apps[0].repo_client(installation, "octo-org", "demo", info=known)
    fresh = await apps[0].repo_client(installation, "octo-org", "demo")

    assert await given.get_repository() == known
    read = [await fresh.get_repository() for _ in range(3)]

    assert known.full_name == payload["repository"]["full_name"]
    assert known.default_branch == payload["repository"]["default_branch"]
    assert read[0] == read[1] == read[2] and read[0].full_name == REPO
    assert calls("GET", "/repos/{owner}/{repo}") == [200]


async def test_an_unreachable_cache_leaves_requests_unconditional(
    calls: Calls, fake: FakeGitHub, installation: int
) -> None:
    # Nothing listens on port 9 (discard) here: every Redis call fails.
    dead = aioredis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.5)
    store = EtagStore(dead, key_prefix="unreachable")
    transport = ConditionalTransport(httpx.AsyncHTTPTransport(), store, scope=str(installation))
    number = fake.create_issue(REPO, "No cache")
    headers = {"authorization": f"token {fake.mint_token(installation)}"}
    try:
        async with httpx.AsyncClient(transport=transport, headers=headers) as http:
            answers = [
                await http.get(f"{fake.api_url}/repos/{REPO}/issues/{number}") for _ in range(2)
            ]
    finally:
        await dead.aclose()

    assert [a.json()["title"] for a in answers] == ["No cache", "No cache"]
    assert calls("GET", ISSUE) == [200, 200]
