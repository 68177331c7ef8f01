"""The bot's GitHub client against the fake GitHub over loopback HTTP: App auth with tokens
shared through real Redis, rate-limit retries, and every RepoClient operation as GitHub's
REST API answers it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from bot.github import (
    CheckAction,
    CheckAnnotation,
    CheckOutput,
    GitHubApp,
    GitHubError,
    GitHubNotFound,
    GitHubRateLimited,
    RepoClient,
    ReviewComment,
    convert_manifest,
    scrub,
)
from bot.github.diff import DiffIndex, parse_patch
from bot.github.models import PullFile
from bot.github.retry import default_retry
from tests.fakegithub import BOT_LOGIN, FakeGitHub, serve

REPO = "octo-org/demo"
APP_PY = "".join(f"line {i}\n" for i in range(1, 41))
FILES = {
    "README.md": "# demo\n",
    "src/app.py": APP_PY,
    ".github/workflows/deploy.yml": "name: Deploy\non:\n  workflow_dispatch: {}\njobs: {}\n",
}


class RecordingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, remembering the headers each request went out with."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.sent: list[httpx.Headers] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.headers.copy())
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGitHub]:
    """One fake for the module (starting one costs ~0.5 s); each test makes its own issues
    and branches, and counts requests and tokens from its own start (``since``)."""
    fake = FakeGitHub(tmp_path_factory.mktemp("github"))
    fake.add_installation("octo-org")
    fake.create_repo("octo-org", "demo", FILES)
    with serve(fake):
        yield fake


@dataclass
class Since:
    """What the fake saw from the start of one test."""

    fake: FakeGitHub
    requests: int
    minted: int

    def calls(self, method: str, path: str) -> list[int]:
        """Statuses answered for ``method path`` (path relative to /api/v3)."""
        return [
            r.status
            for r in self.fake.requests[self.requests :]
            if r.method == method and r.path.endswith(path)
        ]

    def tokens_minted(self) -> int:
        return self.fake.tokens_minted - self.minted


@pytest.fixture
def since(fake: FakeGitHub) -> Since:
    return Since(fake, len(fake.requests), fake.tokens_minted)


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    yield client
    await client.aclose()


@pytest.fixture
async def key_prefix(redis: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix for this test alone; its keys are deleted afterwards."""
    prefix = f"test-github-client:{uuid.uuid4().hex}"
    yield prefix
    keys = [key async for key in redis.scan_iter(f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)


AppFactory = Callable[..., GitHubApp]


@pytest.fixture
async def new_app(
    fake: FakeGitHub, redis: aioredis.Redis, key_prefix: str
) -> AsyncIterator[AppFactory]:
    """Makes GitHubApps for the fake (keyword arguments override), closed after the test."""
    made: list[GitHubApp] = []

    def make(**kwargs: Any) -> GitHubApp:
        options: dict[str, Any] = {"redis": redis, "key_prefix": key_prefix, **kwargs}
        made.append(GitHubApp(fake.app_id, fake.private_key_pem, base_url=fake.api_url, **options))
        return made[-1]

    yield make
    for app in made:
        await app.aclose()


@pytest.fixture
def app(new_app: AppFactory) -> GitHubApp:
    return new_app()


@pytest.fixture
async def client(app: GitHubApp) -> RepoClient:
    installation = await app.installation_id_for("octo-org", "demo")
    return await app.repo_client(installation, "octo-org", "demo")


# -- App authentication ------------------------------------------------------------------


async def test_identity_is_the_apps_bot_account_and_requests_name_the_app(
    since: Since, fake: FakeGitHub, new_app: AppFactory
) -> None:
    transport = RecordingTransport()
    app = new_app(user_agent="agent-factory/test", transport=transport)

    identity = await app.identity()
    installation = await app.installation_id_for("octo-org", "demo")
    repo = await app.repo_client(installation, "octo-org", "demo")
    await repo.get_repository()

    assert identity.login == BOT_LOGIN == "agent-factory[bot]"
    assert identity.email == f"{identity.user_id}+agent-factory[bot]@users.noreply.127.0.0.1"
    assert transport.sent, "the injected transport carried the requests"
    assert {h["user-agent"] for h in transport.sent} == {"agent-factory/test"}
    # JWT for the app endpoints, the installation token for the repository.
    auth = {r.path: r.auth for r in fake.requests}
    assert auth[f"/repos/{REPO}/installation"] == "jwt"
    assert auth[f"/repos/{REPO}"] == "token"
    await transport.aclose()


async def test_four_workers_share_one_installation_token(
    since: Since, fake: FakeGitHub, new_app: AppFactory
) -> None:
    # Four workers as four processes would be: their own Redis connection and GitHubApp.
    redis_clients = [aioredis.Redis(host="127.0.0.1", port=6379) for _ in range(4)]
    workers = [new_app(redis=r) for r in redis_clients]
    installation = await workers[0].installation_id_for("octo-org", "demo")
    number = fake.create_issue(REPO, "Shared tokens")
    try:
        clients = [await w.repo_client(installation, "octo-org", "demo") for w in workers]
        issues = await asyncio.gather(*(clients[i % 4].get_issue(number) for i in range(100)))
    finally:
        for r in redis_clients:
            await r.aclose()

    assert {issue.title for issue in issues} == {"Shared tokens"}
    assert since.tokens_minted() == 1
    token_calls = since.calls("POST", f"/app/installations/{installation}/access_tokens")
    assert token_calls == [201]
    issue_calls = since.calls("GET", f"/repos/{REPO}/issues/{number}")
    # Each read reached GitHub; those made after another worker's 200 revalidated (304).
    assert len(issue_calls) == 100 and set(issue_calls) <= {200, 304} and 200 in issue_calls


async def test_token_is_cached_until_five_minutes_before_it_expires(
    since: Since, app: GitHubApp, fake: FakeGitHub, redis: aioredis.Redis, key_prefix: str
) -> None:
    installation = await app.installation_id_for("octo-org", "demo")
    first = await app.installation_token(installation)
    again = await app.installation_token(installation)

    assert again.token == first.token
    assert since.tokens_minted() == 1
    [key] = [k async for k in redis.scan_iter(f"{key_prefix}:*:token")]
    ttl = await redis.pttl(key)
    assert timedelta(minutes=54) < timedelta(milliseconds=ttl) <= timedelta(minutes=55)


async def test_rejected_token_is_replaced_and_the_request_succeeds(
    since: Since, app: GitHubApp, client: RepoClient, fake: FakeGitHub
) -> None:
    await client.get_repository()
    installation = await app.installation_id_for("octo-org", "demo")
    fake.expire_token((await app.installation_token(installation)).token)

    # A client of its own: one client reads the repository only once.
    later = await app.repo_client(installation, "octo-org", "demo")
    info = await later.get_repository()

    assert info.full_name == REPO
    assert since.tokens_minted() == 2
    # The new token's ETag differs from the old one's, as on GitHub: a full answer.
    assert since.calls("GET", f"/repos/{REPO}") == [200, 401, 200]


@pytest.mark.parametrize(
    ("status", "secondary"), [(429, False), (403, True)], ids=["429", "403-secondary"]
)
async def test_rate_limited_request_is_retried_then_succeeds(
    since: Since, client: RepoClient, fake: FakeGitHub, status: int, secondary: bool
) -> None:
    number = fake.create_issue(REPO, "Busy")
    fake.fail_next(
        "GET",
        rf"/repos/{REPO}/issues/{number}$",
        status,
        {"retry-after": "1"},
        secondary=secondary,
    )

    issue = await client.get_issue(number)

    assert issue.title == "Busy"
    assert since.calls("GET", f"/repos/{REPO}/issues/{number}") == [status, 200]


async def test_long_rate_limit_wait_is_left_to_the_caller(
    since: Since, fake: FakeGitHub, new_app: AppFactory
) -> None:
    app = new_app(retry=default_retry(max_wait=timedelta(seconds=5)))
    installation = await app.installation_id_for("octo-org", "demo")
    client = await app.repo_client(installation, "octo-org", "demo")
    number = fake.create_issue(REPO, "Exhausted")
    fake.fail_next("GET", rf"/repos/{REPO}/issues/{number}$", 403)  # primary: reset in 60 s

    with pytest.raises(GitHubRateLimited) as caught:
        await client.get_issue(number)

    assert 50 <= caught.value.retry_after <= 60
    assert since.calls("GET", f"/repos/{REPO}/issues/{number}") == [403]


async def test_errors_name_the_operation_and_never_the_token(
    app: GitHubApp, client: RepoClient
) -> None:
    installation = await app.installation_id_for("octo-org", "demo")
    token = (await app.installation_token(installation)).token

    with pytest.raises(GitHubNotFound) as caught:
        await client.get_issue(999)

    message = str(caught.value)
    assert message.startswith(f"GitHub read issue {REPO}#999 failed (HTTP 404)")
    assert token not in message and token not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_minting_for_an_unknown_installation_fails_cleanly(app: GitHubApp) -> None:
    client = await app.repo_client(987654, "octo-org", "demo")

    with pytest.raises(GitHubError) as caught:
        await client.get_repository()

    assert "mint a token for installation 987654" in str(caught.value)
    assert caught.value.status == 404
    assert "eyJ" not in str(caught.value)  # no JWT


# -- Issues, comments, reactions, labels --------------------------------------------------


async def test_status_comment_is_created_once_then_edited(
    client: RepoClient, fake: FakeGitHub
) -> None:
    number = fake.create_issue(REPO, "Status")
    fake.comment(REPO, number, "<!-- factory:status --> a human quoting the marker")

    first = await client.upsert_marked_comment(number, "factory:status", "Planning…")
    second = await client.upsert_marked_comment(number, "factory:status", "Coding…")
    found = await client.find_marked_comment(number, "factory:status")

    comments = fake.comments(REPO, number)
    bot_comments = [c for c in comments if c.user.login == BOT_LOGIN]
    assert len(comments) == 2 and len(bot_comments) == 1
    assert first.id == second.id == bot_comments[0].id == (found and found.id)
    assert bot_comments[0].body == "<!-- factory:status -->\nCoding…"


async def test_issue_comments_reactions_and_labels(client: RepoClient, fake: FakeGitHub) -> None:
    number = fake.create_issue(REPO, "Add login", "Please", labels=["factory"])
    human = fake.comment(REPO, number, "go")

    issue = await client.get_issue(number)
    comments = await client.list_issue_comments(number)
    await client.react_to_issue(number, "eyes")
    await client.react_to_issue_comment(human, "+1")
    labels = await client.add_labels(number, ["factory:planning"])
    removed = await client.remove_label(number, "factory")
    removed_again = await client.remove_label(number, "factory")

    assert (issue.title, issue.body, issue.labels, issue.is_pull_request) == (
        "Add login",
        "Please",
        ("factory",),
        False,
    )
    assert [(c.id, c.author, c.body) for c in comments] == [(human, "alice", "go")]
    assert [r.content for r in fake.reactions(REPO, number)] == ["eyes"]
    assert [r.content for r in fake.reactions(REPO, comment_id=human)] == ["+1"]
    assert set(labels) == {"factory", "factory:planning"}
    assert (removed, removed_again) == (True, False)
    assert fake.labels(REPO, number) == ["factory:planning"]


async def test_long_comment_is_cut_to_githubs_limit(client: RepoClient, fake: FakeGitHub) -> None:
    number = fake.create_issue(REPO, "Verbose")
    comment = await client.create_comment(number, "x" * 70_000)
    assert len(comment.body) == 65536 and comment.body.endswith("(truncated)")


# -- Repository contents and branches -----------------------------------------------------


async def test_files_and_trees_at_a_ref(client: RepoClient, fake: FakeGitHub) -> None:
    sha = fake.push_files(REPO, "feature-files", {"src/app.py": "changed\n"})

    config = await client.get_file(".github/workflows/deploy.yml")
    at_main = await client.get_file("src/app.py", ref="main")
    at_feature = await client.get_file("src/app.py", ref=sha)
    missing = await client.get_file(".github/factory.yml")
    directory = await client.get_file("src")
    tree = await client.get_tree("main")

    assert config is not None and "workflow_dispatch" in config.text
    assert at_main is not None and at_main.text == APP_PY
    assert at_feature is not None and at_feature.content == b"changed\n"
    assert missing is None and directory is None
    assert {e.path for e in tree.entries if e.type == "blob"} == set(FILES)
    assert not tree.truncated


async def test_create_branch_is_idempotent(client: RepoClient, fake: FakeGitHub) -> None:
    main = fake.branch_sha(REPO, "main")
    assert main is not None

    made = await client.create_branch("factory/issue-1-x", main)
    again = await client.create_branch("factory/issue-1-x", main)

    assert made == again and made.sha == main
    assert fake.branch_sha(REPO, "factory/issue-1-x") == main
    assert await client.get_branch("nope") is None


async def test_permission_of_collaborators_and_strangers(
    client: RepoClient, fake: FakeGitHub
) -> None:
    fake.set_permission(REPO, "maintainer-mia", "maintain")
    fake.set_permission(REPO, "reader-rob", "read")

    mia = await client.get_permission("maintainer-mia")
    rob = await client.get_permission("reader-rob")
    unknown = await client.get_permission("no-such-user")

    assert (mia.permission, mia.role_name, mia.can_write) == ("write", "maintain", True)
    assert (rob.permission, rob.role_name, rob.can_write) == ("read", "read", False)
    assert (unknown.permission, unknown.can_write) == ("none", False)


# -- Pull requests and reviews --------------------------------------------------------------


async def test_ensure_pull_request_never_opens_a_second(
    client: RepoClient, fake: FakeGitHub
) -> None:
    fake.push_files(REPO, "factory/issue-7-x", {"NEW.md": "new\n"})

    first = await client.ensure_pull_request("factory/issue-7-x", "main", "Fix #7", "Body", True)
    second = await client.ensure_pull_request("factory/issue-7-x", "main", "Again", "Again")
    updated = await client.update_pull_request(first.number, body="Closes #7")
    await client.request_reviewers(first.number, ["alice"])

    assert first.number == second.number == updated.number
    assert first.draft and first.author == BOT_LOGIN
    opened = [
        p.number for p in fake.pulls(REPO) if p.pull and p.pull.head_ref == "factory/issue-7-x"
    ]
    assert opened == [first.number]
    assert fake.issue(REPO, first.number).body == "Closes #7"
    pull = fake.issue(REPO, first.number).pull
    assert pull is not None and pull.requested_reviewers == ["alice"]


async def test_review_comment_outside_the_diff_moves_into_the_body(
    since: Since, client: RepoClient, fake: FakeGitHub
) -> None:
    changed = APP_PY.replace("line 20\n", "line twenty\n")
    fake.push_files(REPO, "feature-twenty", {"src/app.py": changed})
    pr = fake.open_pr(REPO, "feature-twenty", title="Twenty")

    review = await client.create_review(
        pr,
        body="Two notes.",
        event="REQUEST_CHANGES",
        comments=[
            ReviewComment("src/app.py", 20, "Spell it as a number."),
            ReviewComment("src/app.py", 2, "Far from the change."),
            ReviewComment("README.md", 1, "Not in this PR."),
        ],
    )

    [posted] = fake.reviews(REPO, pr)
    inline = fake.review_comments(REPO, pr)
    assert review.event == "REQUEST_CHANGES" and posted.state == "CHANGES_REQUESTED"
    assert [(c.path, c.line, c.side, c.body) for c in inline] == [
        ("src/app.py", 20, "RIGHT", "Spell it as a number.")
    ]
    assert [c.line for c in review.moved_to_body] == [2, 1]
    assert "`src/app.py:2`: Far from the change." in posted.body
    assert "`README.md:1`: Not in this PR." in posted.body
    assert 422 not in since.calls("POST", f"/repos/{REPO}/pulls/{pr}/reviews")

    reply = await client.reply_to_review_comment(pr, inline[0].id, "Done.")
    await client.react_to_review_comment(inline[0].id, "rocket")
    assert reply.in_reply_to_id == inline[0].id
    assert [r.content for r in fake.reactions(REPO, review_comment_id=inline[0].id)] == ["rocket"]


async def test_verdict_on_the_bots_own_pull_request_is_posted_as_a_comment(
    client: RepoClient, fake: FakeGitHub
) -> None:
    fake.push_files(REPO, "factory/issue-8-y", {"src/app.py": APP_PY + "line 41\n"})
    pr = await client.ensure_pull_request("factory/issue-8-y", "main", "Y", "")

    review = await client.create_review(
        pr.number,
        body="Looks good.",
        event="APPROVE",
        comments=[ReviewComment("src/app.py", 41, "New last line.")],
    )

    [posted] = fake.reviews(REPO, pr.number)
    assert review.event == "COMMENT" and posted.state == "COMMENTED"
    assert [c.line for c in fake.review_comments(REPO, pr.number)] == [41]


def test_commentable_lines_come_from_the_patch_hunks() -> None:
    patch = (
        "@@ -1,3 +1,4 @@\n a\n-b\n+B\n+B2\n c\n"
        "@@ -10,2 +11,2 @@ def f():\n x\n-y\n+Y\n\\ No newline at end of file"
    )
    first, second = parse_patch(patch)
    assert (sorted(first.right), sorted(first.left)) == ([1, 2, 3, 4], [1, 2, 3])
    assert (sorted(second.right), sorted(second.left)) == ([11, 12], [10, 11])

    index = DiffIndex([PullFile("f.py", "modified", patch), PullFile("bin", "added", None)])
    assert index.accepts(ReviewComment("f.py", 3, "ok"))
    assert index.accepts(ReviewComment("f.py", 2, "old b", side="LEFT"))
    assert index.accepts(ReviewComment("f.py", 4, "span", start_line=1))
    assert not index.accepts(ReviewComment("f.py", 11, "across hunks", start_line=4))
    assert not index.accepts(ReviewComment("f.py", 8, "between hunks"))
    assert not index.accepts(ReviewComment("bin", 1, "binary"))
    assert not index.accepts(ReviewComment("other.py", 1, "not in the PR"))


# -- Checks, workflows, deployments ---------------------------------------------------------


async def test_check_run_annotations_go_fifty_per_request(
    since: Since, client: RepoClient, fake: FakeGitHub
) -> None:
    sha = fake.branch_sha(REPO, "main")
    assert sha is not None
    annotations = tuple(
        CheckAnnotation("src/app.py", i, i, "warning", f"note {i}") for i in range(1, 121)
    )
    output = CheckOutput("Review", "120 notes", annotations=annotations)

    run = await client.create_check_run(
        "factory/review",
        sha,
        output=output,
        actions=[CheckAction("Fix it", "Let the bot fix these", "fix")],
    )
    done = await client.update_check_run(
        run.id,
        conclusion="neutral",
        output=CheckOutput("Review", "Done", annotations=annotations[:60]),
    )
    found = await client.find_check_run("factory/review", sha)

    [stored] = fake.check_runs(REPO, sha)
    assert len(stored.annotations) == 180
    assert [a["start_line"] for a in stored.annotations[:120]] == list(range(1, 121))
    assert stored.actions == [
        {"label": "Fix it", "description": "Let the bot fix these", "identifier": "fix"}
    ]
    assert (done.status, done.conclusion) == ("completed", "neutral")
    assert found is not None and found.id == run.id
    assert await client.find_check_run("factory/other", sha) is None
    assert since.calls("POST", f"/repos/{REPO}/check-runs") == [201]
    # 70 more of the first 120, then 10 more of the update's 60.
    assert since.calls("PATCH", f"/repos/{REPO}/check-runs/{run.id}") == [200] * 4


def test_check_action_limits_are_checked_where_it_is_made() -> None:
    with pytest.raises(ValueError, match="label"):
        CheckAction("A label that is far too long", "d", "id")


async def test_workflow_dispatch_names_its_run(client: RepoClient, fake: FakeGitHub) -> None:
    dispatched = await client.dispatch_workflow("deploy.yml", "main", {"env": "staging"})
    runs = await client.list_workflow_runs("deploy.yml", event="workflow_dispatch")

    [stored] = fake.workflow_runs(REPO)
    assert dispatched.run_id == stored.id and stored.inputs == {"env": "staging"}
    assert [r.id for r in runs] == [stored.id]
    assert runs[0].head_branch == "main"


async def test_deployment_and_its_status(client: RepoClient, fake: FakeGitHub) -> None:
    sha = fake.branch_sha(REPO, "main")
    deployment = await client.create_deployment(
        "main", "preview", description="PR preview", required_contexts=[], transient=True
    )
    status = await client.create_deployment_status(
        deployment.id, "success", environment_url="https://preview.example", description="x" * 300
    )

    [stored] = fake.deployments(REPO)
    assert (deployment.id, deployment.sha, deployment.environment) == (stored.id, sha, "preview")
    assert status.state == "success" and status.environment_url == "https://preview.example"
    assert len(stored.statuses[0].description) == 140


async def test_manifest_code_becomes_credentials(fake: FakeGitHub) -> None:
    credentials = await convert_manifest("one-time-code", base_url=fake.api_url)

    assert credentials.app_id == fake.app_id and credentials.slug == "agent-factory"
    assert credentials.private_key.get_secret_value() == fake.private_key_pem
    assert "PRIVATE KEY" not in repr(credentials)
    assert credentials.client_secret.get_secret_value() not in repr(credentials)


def test_scrub_removes_token_shaped_text() -> None:
    text = (
        "token ghs_abcdefghijklmnopqrstuvwxyz0123 in https://x-access-token:s3cret@h/x.git "
        "Authorization: Bearer eyJhbGciOi.eyJpc3MiOjF9.c2lnbmF0dXJlc2ln"
    )
    cleaned = scrub(text, "s3cret")
    assert "ghs_" not in cleaned and "s3cret" not in cleaned and "eyJ" not in cleaned
