"""The fake GitHub answers like GitHub: githubkit parses it, git clones and pushes over HTTP,
GitHub's 401/422/429 rules hold, and webhooks arrive signed and parse."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy, UnauthAuthStrategy
from githubkit.exception import RequestFailed
from githubkit.webhooks import parse, verify
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakegithub import BOT_LOGIN, FakeGitHub, serve
from tests.fakegithub.gitrepo import git_env

SECRET = "webhook-s3cret"
FILES = {
    "README.md": "# demo\n",
    "src/app.py": "".join(f"line {i}\n" for i in range(1, 41)),
    ".github/workflows/deploy.yml": "name: Deploy\non:\n  workflow_dispatch: {}\njobs: {}\n",
}


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(tmp_path / "github", webhook_secret=SECRET)
    fake.add_installation("octo-org")
    fake.create_repo("octo-org", "demo", FILES)
    with serve(fake):
        yield fake


@pytest.fixture
def installation(fake: FakeGitHub) -> int:
    return next(iter(fake.store.installations))


@pytest.fixture
def gh(fake: FakeGitHub, installation: int) -> Iterator[GitHub[Any]]:
    app = GitHub(
        AppAuthStrategy(str(fake.app_id), fake.private_key_pem),
        base_url=f"{fake.api_url}/",
        auto_retry=False,
    )
    with app.with_auth(app.auth.as_installation(installation)) as client:
        yield client


def git(
    *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = git_env(
        {
            "GIT_AUTHOR_NAME": "Bot",
            "GIT_AUTHOR_EMAIL": "bot@example.com",
            "GIT_COMMITTER_NAME": "Bot",
            "GIT_COMMITTER_EMAIL": "bot@example.com",
        }
    )
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=check
    )


def authed_url(fake: FakeGitHub, token: str) -> str:
    assert fake.base_url is not None
    return fake.clone_url("octo-org/demo").replace("http://", f"http://x-access-token:{token}@")


def open_bot_pr(fake: FakeGitHub, gh: GitHub[Any]) -> int:
    """The bot pushes a branch through the API-less git path and opens a PR through REST."""
    fake.push_files(
        "octo-org/demo",
        "feature",
        {"src/app.py": FILES["src/app.py"].replace("line 20\n", "line twenty\n")},
        "Change line 20",
        user=BOT_LOGIN,
    )
    pr = gh.rest.pulls.create(
        "octo-org", "demo", title="Change line 20", head="feature", base="main", body="Body"
    ).parsed_data
    return pr.number


# -- git over smart HTTP ---------------------------------------------------------------------


def test_clone_commit_push_over_http_needs_a_token(fake: FakeGitHub, tmp_path: Path) -> None:
    denied = git("clone", fake.clone_url("octo-org/demo"), str(tmp_path / "anon"), check=False)
    # A 401 with a Basic challenge makes git ask for credentials, which it may not here.
    assert denied.returncode != 0 and "could not read Username" in denied.stderr
    wrong = git("clone", authed_url(fake, "ghs_wrong"), str(tmp_path / "wrong"), check=False)
    assert wrong.returncode != 0 and "Authentication failed" in wrong.stderr

    token = fake.mint_token(next(iter(fake.store.installations)))
    work = tmp_path / "work"
    git("clone", authed_url(fake, token), str(work))
    assert (work / "src" / "app.py").read_text() == FILES["src/app.py"]

    (work / "NEW.md").write_text("new\n")
    git("checkout", "-b", "topic", cwd=work)
    git("add", "NEW.md", cwd=work)
    git("commit", "-m", "Add NEW", cwd=work)
    git("push", "origin", "topic", cwd=work)

    receiver = Receiver()
    fake.set_webhook_sink(asgi_app=receiver.app)
    git("commit", "--amend", "-m", "Add NEW.md", cwd=work)
    git("push", "--force", "origin", "topic", cwd=work)
    head = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    pushed = fake.wait_for_deliveries()
    assert [(d.event, d.payload["ref"], d.payload["after"]) for d in pushed] == [
        ("push", "refs/heads/topic", head)
    ]
    assert pushed[0].payload["forced"] is True

    assert fake.branch_sha("octo-org/demo", "topic") == head
    assert fake.file_at("octo-org/demo", "topic", "NEW.md") == "new\n"
    assert fake.git_log("octo-org/demo", "topic")[0].message == "Add NEW.md"
    assert ("GET", "/octo-org/demo.git/info/refs", 401, "none") in [
        (r.method, r.path, r.status, r.auth) for r in fake.requests
    ]


def test_git_rejects_a_wrong_token_with_basic_challenge(fake: FakeGitHub) -> None:
    assert fake.base_url is not None
    bad = base64.b64encode(b"x-access-token:ghs_nope").decode()
    response = httpx.get(
        f"{fake.clone_url('octo-org/demo')}/info/refs?service=git-upload-pack",
        headers={"authorization": f"Basic {bad}"},
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")


def test_gzipped_upload_pack_request_is_inflated(fake: FakeGitHub) -> None:
    token = fake.mint_token(next(iter(fake.store.installations)))
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    head = fake.branch_sha("octo-org/demo", "main")
    assert head is not None
    want = f"want {head} no-progress\n"
    body = f"{len(want) + 4:04x}{want}00000009done\n".encode()
    response = httpx.post(
        f"{fake.clone_url('octo-org/demo')}/git-upload-pack",
        content=gzip.compress(body),
        headers={
            "authorization": f"Basic {basic}",
            "content-type": "application/x-git-upload-pack-request",
            "content-encoding": "gzip",
        },
    )
    assert response.status_code == 200
    assert b"PACK" in response.content


# -- REST through githubkit ------------------------------------------------------------------


def test_app_endpoints_need_the_app_jwt(fake: FakeGitHub, installation: int) -> None:
    app = GitHub(
        AppAuthStrategy(str(fake.app_id), fake.private_key_pem), base_url=f"{fake.api_url}/"
    )
    authenticated = app.rest.apps.get_authenticated().parsed_data
    assert authenticated is not None and authenticated.slug == "agent-factory"
    found = app.rest.apps.get_repo_installation("octo-org", "demo").parsed_data
    assert found.id == installation

    assert httpx.get(f"{fake.api_url}/app").status_code == 401
    token = fake.mint_token(installation)
    as_token = httpx.get(f"{fake.api_url}/app", headers={"authorization": f"token {token}"})
    assert as_token.status_code == 401
    other_key = GitHub(
        AppAuthStrategy(str(fake.app_id + 1), fake.private_key_pem),
        base_url=f"{fake.api_url}/",
        auto_retry=False,
    )
    with pytest.raises(RequestFailed) as failed:
        other_key.rest.apps.get_authenticated()
    assert failed.value.response.status_code == 401


def test_installation_token_is_required_and_minted_once(
    fake: FakeGitHub, gh: GitHub[Any], installation: int
) -> None:
    assert httpx.get(f"{fake.api_url}/repos/octo-org/demo").status_code == 401
    now = int(time.time())
    app_jwt = jwt.encode(
        {"iss": str(fake.app_id), "iat": now - 60, "exp": now + 540},
        fake.private_key_pem,
        algorithm="RS256",
    )
    as_app = httpx.get(
        f"{fake.api_url}/repos/octo-org/demo", headers={"authorization": f"Bearer {app_jwt}"}
    )
    assert as_app.status_code == 401

    repo = gh.rest.repos.get("octo-org", "demo").parsed_data
    assert repo.clone_url == f"{fake.base_url}/octo-org/demo.git"
    assert repo.default_branch == "main"
    gh.rest.repos.get("octo-org", "demo")
    assert fake.tokens_minted == 1
    kinds = {(r.path, r.auth) for r in fake.requests}
    assert (f"/app/installations/{installation}/access_tokens", "jwt") in kinds
    assert ("/repos/octo-org/demo", "token") in kinds


def test_gets_carry_an_etag_and_an_unchanged_resource_answers_304(
    fake: FakeGitHub, installation: int
) -> None:
    number = fake.create_issue("octo-org/demo", "Conditional")
    url = f"{fake.api_url}/repos/octo-org/demo/issues/{number}"
    token, other = fake.mint_token(installation), fake.mint_token(installation)
    auth = {"authorization": f"token {token}"}

    first = httpx.get(url, headers=auth)
    etag = first.headers["etag"]
    unchanged = httpx.get(url, headers={**auth, "if-none-match": etag})
    in_a_list = httpx.get(url, headers={**auth, "if-none-match": f'"nope", {etag}'})
    other_token = httpx.get(url, headers={"authorization": f"token {other}", "if-none-match": etag})
    fake.issue("octo-org/demo", number).title = "Changed"
    changed = httpx.get(url, headers={**auth, "if-none-match": etag})
    missing = httpx.get(f"{fake.api_url}/repos/octo-org/demo/contents/nope", headers=auth)
    written = httpx.post(f"{url}/comments", headers=auth, json={"body": "hi"})

    assert first.status_code == 200 and etag.startswith('W/"')
    assert "Authorization" in first.headers["vary"]
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    assert unchanged.headers["etag"] == etag
    assert in_a_list.status_code == 304
    # GitHub's ETags belong to the token: another token's validator never matches.
    assert other_token.status_code == 200 and other_token.headers["etag"] != etag
    assert changed.status_code == 200 and changed.json()["title"] == "Changed"
    assert missing.status_code == 404 and "etag" not in missing.headers
    assert written.status_code == 201 and "etag" not in written.headers
    recorded = [
        (r.status, r.conditional)
        for r in fake.requests
        if r.route == "/repos/{owner}/{repo}/issues/{number}"
    ]
    assert recorded == [(200, False), (304, True), (304, True), (200, True), (200, True)]


def test_check_runs_of_a_commit_come_in_pages_of_at_most_a_hundred(
    fake: FakeGitHub, installation: int
) -> None:
    sha = fake.branch_sha("octo-org/demo", "main")
    auth = {"authorization": f"token {fake.mint_token(installation)}"}
    api = f"{fake.api_url}/repos/octo-org/demo"
    with httpx.Client(headers=auth) as http:
        for i in range(150):
            made = http.post(f"{api}/check-runs", json={"name": f"check {i}", "head_sha": sha})
            assert made.status_code == 201
        first = http.get(f"{api}/commits/{sha}/check-runs", params={"per_page": 500})
        second = http.get(first.links["next"]["url"])
        other_app = http.get(f"{api}/commits/{sha}/check-runs", params={"app_id": 1})

    assert first.json()["total_count"] == second.json()["total_count"] == 150
    assert len(first.json()["check_runs"]) == 100 and len(second.json()["check_runs"]) == 50
    assert "next" not in second.links and second.links["first"]["url"]
    names = {r["name"] for r in first.json()["check_runs"] + second.json()["check_runs"]}
    assert names == {f"check {i}" for i in range(150)}
    assert other_app.json() == {"total_count": 0, "check_runs": []}


def test_issues_comments_reactions_labels_parse(fake: FakeGitHub, gh: GitHub[Any]) -> None:
    number = fake.create_issue("octo-org/demo", "Add a thing", "Please.", user="alice")
    issue = gh.rest.issues.get("octo-org", "demo", number).parsed_data
    assert (issue.title, issue.user.login if issue.user else None) == ("Add a thing", "alice")

    created = gh.rest.issues.create_comment("octo-org", "demo", number, body="On it").parsed_data
    assert created.user is not None and created.user.login == BOT_LOGIN
    assert created.user.type == "Bot"
    edited = gh.rest.issues.update_comment("octo-org", "demo", created.id, body="Done").parsed_data
    assert edited.body == "Done"
    assert gh.rest.issues.get_comment("octo-org", "demo", created.id).parsed_data.body == "Done"
    listed = gh.rest.issues.list_comments("octo-org", "demo", number).parsed_data
    assert [c.body for c in listed] == ["Done"]
    assert [c.body for c in fake.comments("octo-org/demo", number)] == ["Done"]

    reaction = gh.rest.reactions.create_for_issue("octo-org", "demo", number, content="eyes")
    assert reaction.status_code == 201 and reaction.parsed_data.content == "eyes"
    again = gh.rest.reactions.create_for_issue("octo-org", "demo", number, content="eyes")
    assert again.status_code == 200
    gh.rest.reactions.create_for_issue_comment("octo-org", "demo", created.id, content="+1")
    assert [r.content for r in fake.reactions("octo-org/demo", number)] == ["eyes"]
    assert [r.content for r in fake.reactions("octo-org/demo", comment_id=created.id)] == ["+1"]

    labels = gh.rest.issues.add_labels("octo-org", "demo", number, labels=["factory", "bug"])
    assert [label.name for label in labels.parsed_data] == ["factory", "bug"]
    left = gh.rest.issues.remove_label("octo-org", "demo", number, "bug").parsed_data
    assert [label.name for label in left] == ["factory"]
    assert fake.labels("octo-org/demo", number) == ["factory"]
    with pytest.raises(RequestFailed) as missing:
        gh.rest.issues.remove_label("octo-org", "demo", number, "bug")
    assert missing.value.response.status_code == 404


def test_contents_trees_refs_branches_parse(fake: FakeGitHub, gh: GitHub[Any]) -> None:
    file = gh.rest.repos.get_content("octo-org", "demo", "src/app.py").parsed_data
    assert not isinstance(file, list) and file.type == "file"
    assert base64.b64decode(file.content) == FILES["src/app.py"].encode()
    blob = gh.rest.git.get_blob("octo-org", "demo", file.sha).parsed_data
    assert base64.b64decode(blob.content) == FILES["src/app.py"].encode()
    big = "x" * (1024 * 1024 + 1)
    fake.push_files("octo-org/demo", "big", {"big.txt": big})
    large = gh.rest.repos.get_content("octo-org", "demo", "big.txt", ref="big").parsed_data
    assert (large.encoding, large.content) == ("none", "")  # type: ignore[union-attr]
    listing = gh.rest.repos.get_content("octo-org", "demo", "src").parsed_data
    assert isinstance(listing, list) and [i.path for i in listing] == ["src/app.py"]
    with pytest.raises(RequestFailed) as missing:
        gh.rest.repos.get_content("octo-org", "demo", "nope.txt")
    assert missing.value.response.status_code == 404

    sha = fake.push_files("octo-org/demo", "next", {"README.md": "# next\n"})
    on_branch = gh.rest.repos.get_content("octo-org", "demo", "README.md", ref="next").parsed_data
    assert base64.b64decode(on_branch.content) == b"# next\n"  # type: ignore[union-attr]

    tree = gh.rest.git.get_tree("octo-org", "demo", "main", recursive="1").parsed_data
    assert {"README.md", "src", "src/app.py"} <= {e.path for e in tree.tree}
    ref = gh.rest.git.get_ref("octo-org", "demo", "heads/next").parsed_data
    assert ref.object_.sha == sha
    new = gh.rest.git.create_ref("octo-org", "demo", ref="refs/heads/copy", sha=sha)
    assert new.status_code == 201 and fake.branch_sha("octo-org/demo", "copy") == sha
    with pytest.raises(RequestFailed) as exists:
        gh.rest.git.create_ref("octo-org", "demo", ref="refs/heads/copy", sha=sha)
    assert exists.value.response.status_code == 422
    branch = gh.rest.repos.get_branch("octo-org", "demo", "next").parsed_data
    assert branch.commit.sha == sha

    fake.set_permission("octo-org/demo", "bob", "maintain")
    perm = gh.rest.repos.get_collaborator_permission_level("octo-org", "demo", "bob").parsed_data
    assert (perm.permission, perm.role_name) == ("write", "maintain")
    user = gh.rest.users.get_by_username("bob").parsed_data
    assert user.login == "bob"
    assert gh.rest.rate_limit.get().parsed_data.resources.core.limit == 5000


def test_pulls_reviews_and_merge_parse(fake: FakeGitHub, gh: GitHub[Any]) -> None:
    number = open_bot_pr(fake, gh)
    with pytest.raises(RequestFailed) as duplicate:
        gh.rest.pulls.create("octo-org", "demo", title="Again", head="feature", base="main")
    assert duplicate.value.response.status_code == 422
    assert "already exists" in duplicate.value.response.text
    main_sha = fake.branch_sha("octo-org/demo", "main") or ""
    gh.rest.git.create_ref("octo-org", "demo", ref="refs/heads/empty", sha=main_sha)
    with pytest.raises(RequestFailed) as empty:
        gh.rest.pulls.create("octo-org", "demo", title="Empty", head="empty", base="main")
    assert "No commits between" in empty.value.response.text

    listed = gh.rest.pulls.list("octo-org", "demo", head="octo-org:feature", state="open")
    assert [p.number for p in listed.parsed_data] == [number]
    assert gh.rest.pulls.list("octo-org", "demo", head="octo-org:other").parsed_data == []
    pr = gh.rest.pulls.get("octo-org", "demo", number).parsed_data
    assert (pr.changed_files, pr.additions, pr.deletions, pr.mergeable) == (1, 1, 1, True)
    files = gh.rest.pulls.list_files("octo-org", "demo", number).parsed_data
    assert files[0].filename == "src/app.py" and "+line twenty" in (files[0].patch or "")
    updated = gh.rest.pulls.update("octo-org", "demo", number, body="New body").parsed_data
    assert updated.body == "New body"
    gh.rest.pulls.request_reviewers("octo-org", "demo", number, reviewers=["carol"])
    assert fake.pulls("octo-org/demo")[0].pull.requested_reviewers == ["carol"]  # type: ignore[union-attr]

    review = gh.rest.pulls.create_review(
        "octo-org",
        "demo",
        number,
        event="COMMENT",
        body="Looks fine",
        comments=[{"path": "src/app.py", "line": 20, "side": "RIGHT", "body": "Nice"}],
    ).parsed_data
    assert review.state == "COMMENTED"
    assert [
        r.state for r in gh.rest.pulls.list_reviews("octo-org", "demo", number).parsed_data
    ] == ["COMMENTED"]
    comments = gh.rest.pulls.list_review_comments("octo-org", "demo", number).parsed_data
    assert [(c.path, c.line, c.pull_request_review_id) for c in comments] == [
        ("src/app.py", 20, review.id)
    ]
    assert "+line twenty" in comments[0].diff_hunk
    reply = gh.rest.pulls.create_reply_for_review_comment(
        "octo-org", "demo", number, comments[0].id, body="Thanks"
    ).parsed_data
    assert reply.in_reply_to_id == comments[0].id
    first_id: int = comments[0].id
    gh.rest.reactions.create_for_pull_request_review_comment(
        "octo-org", "demo", first_id, content="rocket"
    )
    assert fake.reactions("octo-org/demo", review_comment_id=comments[0].id)[0].content == "rocket"

    fake.submit_review("octo-org/demo", number, "carol", "APPROVE", "LGTM")
    assert [r.state for r in fake.reviews("octo-org/demo", number)] == ["COMMENTED", "APPROVED"]
    merged = gh.rest.pulls.merge("octo-org", "demo", number, merge_method="squash").parsed_data
    assert merged.merged and fake.branch_sha("octo-org/demo", "main") == merged.sha
    assert "line twenty" in (fake.file_at("octo-org/demo", "main", "src/app.py") or "")
    closed = gh.rest.pulls.get("octo-org", "demo", number).parsed_data
    assert (closed.state, closed.merged) == ("closed", True)


def test_review_comment_outside_the_diff_is_422(fake: FakeGitHub, gh: GitHub[Any]) -> None:
    number = open_bot_pr(fake, gh)
    fake.set_permission("octo-org/demo", "carol", "write")
    with pytest.raises(RequestFailed) as outside:
        gh.rest.pulls.create_review(
            "octo-org",
            "demo",
            number,
            event="COMMENT",
            body="x",
            comments=[{"path": "src/app.py", "line": 2, "body": "far from the change"}],
        )
    assert outside.value.response.status_code == 422
    assert "pull_request_review_thread.line must be part of the diff" in outside.value.response.text
    assert fake.reviews("octo-org/demo", number) == []
    # Context lines of the hunk are part of the diff.
    gh.rest.pulls.create_review(
        "octo-org",
        "demo",
        number,
        event="COMMENT",
        body="x",
        comments=[{"path": "src/app.py", "line": 17, "body": "context"}],
    )


def test_approving_own_pull_request_is_422(fake: FakeGitHub, gh: GitHub[Any]) -> None:
    number = open_bot_pr(fake, gh)
    with pytest.raises(RequestFailed) as own:
        gh.rest.pulls.create_review("octo-org", "demo", number, event="APPROVE", body="ok")
    assert own.value.response.status_code == 422
    assert "Can not approve your own pull request" in own.value.response.text


def test_checks_actions_deployments_parse(fake: FakeGitHub, gh: GitHub[Any]) -> None:
    sha = fake.branch_sha("octo-org/demo", "main")
    assert sha is not None
    run = gh.rest.checks.create(
        "octo-org", "demo", name="factory/tests", head_sha=sha, status="in_progress"
    ).parsed_data
    annotation: dict[str, Any] = {
        "path": "src/app.py",
        "start_line": 1,
        "end_line": 1,
        "annotation_level": "warning",
        "message": "hm",
    }
    # githubkit refuses 51 annotations itself; GitHub's own answer needs a raw request.
    token = fake.mint_token(next(iter(fake.store.installations)))
    too_many = httpx.patch(
        f"{fake.api_url}/repos/octo-org/demo/check-runs/{run.id}",
        headers={"authorization": f"token {token}"},
        json={"output": {"title": "t", "summary": "s", "annotations": [annotation] * 51}},
    )
    assert too_many.status_code == 422
    failing: dict[str, Any] = {"title": "1 failing", "summary": "see", "annotations": [annotation]}
    done = gh.rest.checks.update(
        "octo-org",
        "demo",
        run.id,
        conclusion="failure",
        output=failing,
        actions=[{"label": "Fix", "description": "Let the bot fix it", "identifier": "fix"}],
    ).parsed_data
    assert (done.status, done.conclusion, done.output.annotations_count) == (
        "completed",
        "failure",
        1,
    )
    assert gh.rest.checks.get("octo-org", "demo", run.id).parsed_data.name == "factory/tests"
    listed = gh.rest.checks.list_for_ref("octo-org", "demo", "main").parsed_data
    assert [r.id for r in listed.check_runs] == [run.id]
    assert fake.check_runs("octo-org/demo", head_sha=sha)[0].actions[0]["identifier"] == "fix"
    receiver = Receiver()
    fake.set_webhook_sink(asgi_app=receiver.app)
    pressed = fake.request_check_run_action("octo-org/demo", run.id, "fix", user="alice")
    fake.rerequest_check_run("octo-org/demo", run.id, user="alice")
    fake.wait_for_deliveries()
    assert pressed is not None and pressed.status == 202
    action = parse("check_run", pressed.body)
    assert action.requested_action.identifier == "fix"  # type: ignore[union-attr]
    assert [d.action for d in fake.deliveries] == ["requested_action", "rerequested"]

    workflows = gh.rest.actions.list_repo_workflows("octo-org", "demo").parsed_data
    assert [w.name for w in workflows.workflows] == ["Deploy"]
    dispatched = gh.rest.actions.create_workflow_dispatch(
        "octo-org", "demo", "deploy.yml", ref="main", inputs={"env": "staging"}
    )
    assert dispatched.status_code == 204
    runs = gh.rest.actions.list_workflow_runs("octo-org", "demo", "deploy.yml").parsed_data
    assert [r.status for r in runs.workflow_runs] == ["queued"]
    fake.complete_workflow_run(runs.workflow_runs[0].id, "success")
    finished = gh.rest.actions.get_workflow_run("octo-org", "demo", runs.workflow_runs[0].id)
    assert finished.parsed_data.conclusion == "success"
    assert fake.workflow_runs("octo-org/demo")[0].inputs == {"env": "staging"}

    deployment = gh.rest.repos.create_deployment(
        "octo-org",
        "demo",
        ref="main",
        environment="staging",
        auto_merge=False,
        required_contexts=[],
    ).parsed_data
    status = gh.rest.repos.create_deployment_status(
        "octo-org", "demo", deployment.id, state="success", environment_url="http://staging"
    ).parsed_data
    assert status.state == "success"
    assert [d.id for d in gh.rest.repos.list_deployments("octo-org", "demo").parsed_data] == [
        deployment.id
    ]
    statuses = gh.rest.repos.list_deployment_statuses("octo-org", "demo", deployment.id)
    assert [s.state for s in statuses.parsed_data] == ["success"]
    assert fake.deployments("octo-org/demo")[0].statuses[0].environment_url == "http://staging"


def test_manifest_conversion_returns_the_app_credentials(fake: FakeGitHub) -> None:
    anonymous = GitHub(UnauthAuthStrategy(), base_url=f"{fake.api_url}/")
    app = anonymous.rest.apps.create_from_manifest("code123").parsed_data
    assert (app.id, app.slug, app.webhook_secret) == (fake.app_id, "agent-factory", SECRET)
    assert app.pem == fake.private_key_pem and app.client_secret


# -- faults ----------------------------------------------------------------------------------


def test_fail_next_serves_a_rate_limit_once(fake: FakeGitHub, installation: int) -> None:
    token = fake.mint_token(installation)
    client = GitHub(TokenAuthStrategy(token), base_url=f"{fake.api_url}/", auto_retry=False)
    number = fake.create_issue("octo-org/demo", "x")
    fake.fail_next("GET", rf"/issues/{number}$", status=429, headers={"retry-after": "1"})
    with pytest.raises(RequestFailed) as limited:
        client.rest.issues.get("octo-org", "demo", number)
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["retry-after"] == "1"
    assert client.rest.issues.get("octo-org", "demo", number).parsed_data.number == number
    statuses = [
        r.status for r in fake.requests if r.path == f"/repos/octo-org/demo/issues/{number}"
    ]
    assert statuses == [429, 200]

    fake.fail_next("GET", r"^/repos/octo-org/demo$", status=403, times=2)
    headers = {"authorization": f"Bearer {token}"}
    primary = httpx.get(f"{fake.api_url}/repos/octo-org/demo", headers=headers)
    assert primary.status_code == 403 and primary.headers["x-ratelimit-remaining"] == "0"
    assert "rate limit" in primary.json()["message"]
    fake.fail_next("POST", r"/comments$", status=502)
    broken = httpx.post(
        f"{fake.api_url}/repos/octo-org/demo/issues/{number}/comments",
        headers=headers,
        json={"body": "x"},
    )
    assert broken.status_code == 502 and fake.comments("octo-org/demo", number) == []


# -- webhooks --------------------------------------------------------------------------------


class Receiver:
    """A stand-in webhook endpoint that keeps what it was sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.app = Starlette(routes=[Route("/webhooks/github", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> JSONResponse:
        self.received.append((dict(request.headers), await request.body()))
        return JSONResponse({"ok": True}, status_code=202)


async def test_signed_webhooks_verify_and_parse(fake: FakeGitHub) -> None:
    receiver = Receiver()
    fake.set_webhook_sink(asgi_app=receiver.app)
    number = fake.create_issue("octo-org/demo", "Build it", "Details")
    fake.label_issue("octo-org/demo", number, "factory", user="alice")
    fake.comment("octo-org/demo", number, "/factory plan", user="alice")
    deliveries = await fake.settle_webhooks()
    assert [(d.event, d.action, d.status) for d in deliveries] == [
        ("issues", "labeled", 202),
        ("issue_comment", "created", 202),
    ]
    headers, body = receiver.received[0]
    assert verify(SECRET, body, headers["x-hub-signature-256"])
    assert not verify("wrong", body, headers["x-hub-signature-256"])
    event = parse(headers["x-github-event"], body)
    assert event.action == "labeled"  # type: ignore[union-attr]
    assert event.label is not None and event.label.name == "factory"  # type: ignore[union-attr]
    assert event.issue.number == number  # type: ignore[union-attr]
    assert event.installation is not None  # type: ignore[union-attr]
    comment = parse("issue_comment", receiver.received[1][1])
    assert comment.comment.body == "/factory plan"


def test_every_built_webhook_parses(fake: FakeGitHub, gh: GitHub[Any]) -> None:
    repo = "octo-org/demo"
    number = fake.create_issue(repo, "Issue", labels=["factory"])
    comment_id = fake.comment(repo, number, "hello")
    before = fake.branch_sha(repo, "main")
    pr = open_bot_pr(fake, gh)
    review_id = fake.submit_review(
        repo,
        pr,
        "carol",
        "REQUEST_CHANGES",
        "Fix",
        comments=[{"path": "src/app.py", "line": 20, "body": "why?"}],
    )
    review_comment_id = fake.review_comments(repo, pr)[0].id
    sha = fake.branch_sha(repo, "feature")
    check = gh.rest.checks.create("octo-org", "demo", name="t", head_sha=sha or "").parsed_data
    gh.rest.actions.create_workflow_dispatch("octo-org", "demo", "deploy.yml", ref="main")
    run_id = fake.workflow_runs(repo)[0].id
    deployment = gh.rest.repos.create_deployment("octo-org", "demo", ref="main").parsed_data
    after = fake.push_files(repo, "main", {"x.txt": "x\n"})

    cases: list[tuple[str, str | None, dict[str, Any]]] = [
        ("issues", "opened", {"number": number}),
        ("issues", "labeled", {"number": number, "label": "factory"}),
        ("issue_comment", "created", {"number": number, "comment_id": comment_id}),
        ("pull_request", "opened", {"number": pr}),
        ("pull_request", "synchronize", {"number": pr, "before": before, "after": sha}),
        ("pull_request", "closed", {"number": pr}),
        ("pull_request_review", "submitted", {"number": pr, "review_id": review_id}),
        (
            "pull_request_review_comment",
            "created",
            {"number": pr, "review_comment_id": review_comment_id},
        ),
        ("check_run", "rerequested", {"check_run_id": check.id}),
        ("check_run", "created", {"check_run_id": check.id}),
        ("workflow_run", "completed", {"workflow_run_id": run_id}),
        ("deployment", "created", {"deployment_id": deployment.id}),
        ("push", None, {"ref": "refs/heads/main", "before": before, "after": after}),
    ]
    for event, action, refs in cases:
        headers, body = fake.build_webhook(event, action, repo=repo, sender="alice", **refs)
        assert headers["x-github-event"] == event
        assert verify(SECRET, body, headers["x-hub-signature-256"])
        parsed = parse(event, body)
        assert getattr(parsed, "action", None) == action, (event, action)
        assert json.loads(body)["repository"]["full_name"] == repo


def test_bot_actions_and_pushes_fire_deliveries(fake: FakeGitHub, gh: GitHub[Any]) -> None:
    receiver = Receiver()
    fake.set_webhook_sink(asgi_app=receiver.app)
    number = open_bot_pr(fake, gh)
    fake.push_files("octo-org/demo", "feature", {"more.txt": "more\n"}, "More", user="alice")
    fake.merge_pr("octo-org/demo", number, user="alice")
    sent = fake.wait_for_deliveries()
    assert [(d.event, d.action) for d in sent] == [
        ("push", None),
        ("pull_request", "opened"),
        ("push", None),
        ("pull_request", "synchronize"),
        ("push", None),
        ("pull_request", "closed"),
    ]
    opened = parse("pull_request", sent[1].body)
    assert opened.sender.login == BOT_LOGIN and opened.sender.type == "Bot"
    closed = sent[-1].payload
    assert closed["pull_request"]["merged"] is True
    assert fake.pulls("octo-org/demo")[0].pull.head_sha == fake.branch_sha(  # type: ignore[union-attr]
        "octo-org/demo", "feature"
    )
    assert all(d.status == 202 for d in sent)

    fake.deliver_own_events = False
    gh.rest.issues.create_comment("octo-org", "demo", number, body="quiet")
    fake.comment("octo-org/demo", number, "loud", user="alice")
    later = fake.wait_for_deliveries()[len(sent) :]
    assert [(d.event, d.payload["comment"]["body"]) for d in later] == [("issue_comment", "loud")]


def test_deliveries_to_a_url_go_over_http(fake: FakeGitHub) -> None:
    # The fake's own server stands in for a webhook endpoint: it answers 404 and logs the POST.
    fake.set_webhook_sink(url=f"{fake.base_url}/hook")
    number = fake.create_issue("octo-org/demo", "Over HTTP")
    fake.label_issue("octo-org/demo", number, "factory")
    [delivery] = fake.wait_for_deliveries()
    assert delivery.status == 404 and delivery.error is None
    assert ("POST", "/hook", 404) in [(r.method, r.path, r.status) for r in fake.requests]
