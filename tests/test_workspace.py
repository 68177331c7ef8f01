"""Real git clones of the fake GitHub over loopback HTTP: clone, commit as the bot, push, open
the pull request, and do it all again without a second commit or pull request."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from agents.workspace import GitAuthor, GitError, Workspace, WorkspaceTooLarge, branch_name
from bot.github import GitHubApp, RepoClient
from tests.fakegithub import BOT_LOGIN, FakeGitHub, serve

REPO = "octo-org/demo"
FILES = {"README.md": "# demo\n", "src/app.py": "print('hello')\n"}


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(tmp_path / "github")
    fake.add_installation("octo-org")
    fake.create_repo("octo-org", "demo", FILES)
    with serve(fake):
        yield fake


@pytest.fixture
async def app(fake: FakeGitHub) -> AsyncIterator[GitHubApp]:
    redis = aioredis.Redis(host="127.0.0.1", port=6379)
    prefix = f"test-workspace:{uuid.uuid4().hex}"
    app = GitHubApp(
        fake.app_id, fake.private_key_pem, base_url=fake.api_url, redis=redis, key_prefix=prefix
    )
    yield app
    await app.aclose()
    keys = [key async for key in redis.scan_iter(f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


class Bot:
    """What a coder job holds: the repository client and a way to open workspaces."""

    def __init__(self, app: GitHubApp, client: RepoClient, installation: int, root: Path):
        self.app = app
        self.client = client
        self.installation = installation
        self.root = root

    async def token(self) -> str:
        return (await self.app.installation_token(self.installation)).token

    async def workspace(
        self, token: Callable[[], Awaitable[str]] | None = None, **kwargs: object
    ) -> Workspace:
        identity = await self.app.identity()
        info = await self.client.get_repository()
        return Workspace(
            info.clone_url,
            token or self.token,
            GitAuthor(identity.login, identity.email),
            root=self.root,
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture
async def bot(app: GitHubApp, tmp_path: Path) -> Bot:
    installation = await app.installation_id_for("octo-org", "demo")
    client = await app.repo_client(installation, "octo-org", "demo")
    return Bot(app, client, installation, tmp_path / "workspaces")


async def implement_issue(bot: Bot, number: int, title: str) -> tuple[str | None, bool, int]:
    """The coder's step: clone, branch, change, commit, push, open the PR."""
    branch = branch_name(number, title)
    async with await bot.workspace() as ws:
        await ws.clone()
        await ws.checkout_branch(branch)
        (ws.path / "src" / "login.py").write_text("def login():\n    return True\n")
        sha = await ws.commit_all(f"Add login\n\nCloses #{number}")
        pushed = await ws.push()
    pr = await bot.client.ensure_pull_request(branch, "main", title, f"Closes #{number}")
    return sha, pushed.pushed, pr.number


async def test_clone_commit_push_and_pull_request_happen_once(bot: Bot, fake: FakeGitHub) -> None:
    number = fake.create_issue(REPO, "Add a login page")
    branch = "factory/issue-1-add-a-login-page"
    main = fake.branch_sha(REPO, "main")

    sha, pushed, pr = await implement_issue(bot, number, "Add a login page")
    again_sha, pushed_again, pr_again = await implement_issue(bot, number, "Add a login page")

    log = fake.git_log(REPO, branch)
    assert sha is not None and pushed
    assert [c.sha for c in log] == [sha, main]
    assert (log[0].author_name, log[0].committer_name) == (BOT_LOGIN, BOT_LOGIN)
    identity = await bot.app.identity()
    assert log[0].author_email == identity.email
    assert log[0].author_email.endswith("+agent-factory[bot]@users.noreply.127.0.0.1")
    assert fake.file_at(REPO, branch, "src/login.py") == "def login():\n    return True\n"
    # The rerun resumed the pushed branch: nothing new to commit, push or open.
    assert (again_sha, pushed_again, pr_again) == (None, False, pr)
    assert fake.branch_sha(REPO, branch) == sha
    assert [p.number for p in fake.pulls(REPO)] == [pr]
    receive_packs = [r for r in fake.requests if r.path.endswith("/git-receive-pack")]
    assert [r.status for r in receive_packs] == [200]


async def test_rerun_adds_to_the_branch_an_earlier_attempt_pushed(
    bot: Bot, fake: FakeGitHub
) -> None:
    branch = branch_name(2, "Half done")
    first = fake.push_files(REPO, branch, {"src/part1.py": "one\n"}, user="agent-factory[bot]")

    async with await bot.workspace() as ws:
        await ws.clone()
        resumed_at = await ws.checkout_branch(branch)
        (ws.path / "src" / "part2.py").write_text("two\n")
        second = await ws.commit_all("Part two")
        await ws.push()

    assert resumed_at == first
    assert [c.sha for c in fake.git_log(REPO, branch)][:2] == [second, first]


async def test_token_never_reaches_the_clone_on_disk(bot: Bot, fake: FakeGitHub) -> None:
    async with await bot.workspace() as ws:
        await ws.clone()
        await ws.checkout_branch("factory/issue-3-x")
        (ws.path / "NOTE.md").write_text("note\n")
        await ws.commit_all("Note")
        await ws.push()
        token = await bot.token()
        config = (ws.git_dir / "config").read_text()
        on_disk = [
            p
            for p in ws.path.parent.rglob("*")
            if p.is_file() and not p.is_symlink() and token.encode() in p.read_bytes()
        ]
        remote = await ws.git("remote", "get-url", "origin")

    assert token.startswith("ghs_")
    assert token not in config and "ghs_" not in config and "x-access-token" not in config
    assert on_disk == []
    assert remote.strip() == fake.clone_url(REPO)


async def test_partial_clone_fetches_old_versions_when_asked(bot: Bot, fake: FakeGitHub) -> None:
    fake.push_files(REPO, "main", {"README.md": "# demo v2\n"})

    async with await bot.workspace() as ws:
        await ws.clone()
        filter_ = await ws.git("config", "remote.origin.partialclonefilter")
        # Only commands marked as talking to the remote get the token.
        old = await ws.git("show", "HEAD~1:README.md", network=True)

    assert filter_.strip() == "blob:none"
    assert old == "# demo\n"


async def test_nothing_changed_means_no_commit(bot: Bot) -> None:
    async with await bot.workspace() as ws:
        await ws.clone()
        head = await ws.checkout_branch("factory/issue-4-noop")
        assert await ws.commit_all("Nothing") is None
        assert await ws.head() == head


async def test_git_errors_carry_no_token(bot: Bot, fake: FakeGitHub) -> None:
    token = fake.mint_token(bot.installation)

    async def fixed_token() -> str:
        return token

    async with await bot.workspace(token=fixed_token) as ws:
        await ws.clone()
        await ws.checkout_branch("factory/issue-5-x")
        (ws.path / "X.md").write_text("x\n")
        await ws.commit_all("X")
        fake.expire_token(token)  # revoked mid-job
        with pytest.raises(GitError) as caught:
            await ws.push()

    assert "git ls-remote failed" in str(caught.value)
    assert "Authentication failed" in str(caught.value)
    assert token not in str(caught.value)


async def test_the_git_dir_lives_beside_the_work_tree(bot: Bot) -> None:
    """The work tree has a `gitdir:` file (git inside the sandbox still works); the git dir
    and the workspace directory are the bot's, and others may only pass through the latter."""
    async with await bot.workspace() as ws:
        await ws.clone()
        dot_git = (ws.path / ".git").read_text()
        inside_git = await ws.git("rev-parse", "--absolute-git-dir")
        modes = (ws.path.parent.stat().st_mode & 0o777, ws.git_dir.stat().st_uid)
        assert ws.git_dir.name == "git" and ws.git_dir.parent == ws.path.parent
        git_dir = ws.git_dir

    assert dot_git == f"gitdir: {git_dir}\n"
    assert inside_git.strip() == str(git_dir)
    assert modes == (0o711, os.getuid())


async def test_planted_dot_git_directory_is_ignored(bot: Bot, fake: FakeGitHub) -> None:
    """A command replaces the work tree's `.git` with a directory of its own: a config that
    redirects the remote and stores credentials, hooks. The bot's git never reads it."""
    async with await bot.workspace() as ws:
        await ws.clone()
        await ws.checkout_branch("factory/issue-6-x")
        (ws.path / ".git").unlink()
        shutil.copytree(ws.git_dir, ws.path / ".git")
        config = ws.path / ".git" / "config"
        config.write_text(
            config.read_text() + '[url "http://127.0.0.1:9/evil/"]\n\tinsteadOf = http://\n'
            "[credential]\n\thelper = store\n"
        )
        marker = bot.root.parent / "hook-ran"  # outside the workspace, which is removed
        (ws.path / ".git" / "hooks").mkdir(exist_ok=True)
        for name in ("post-commit", "pre-push", "reference-transaction"):
            hook = ws.path / ".git" / "hooks" / name
            hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
            hook.chmod(0o755)
        (ws.path / "Y.md").write_text("y\n")
        sha = await ws.commit_all("Y")
        result = await ws.push()
        tracked = await ws.git("ls-files")

    assert result.pushed and fake.branch_sha(REPO, "factory/issue-6-x") == sha
    assert not marker.exists()
    assert ".git" not in tracked
    assert not (bot.root.parent / ".git-credentials").exists()


async def test_clone_over_the_size_limit_is_refused_and_removed(bot: Bot, fake: FakeGitHub) -> None:
    fake.push_files(REPO, "main", {"big.bin": b"\0" * 200_000})
    ws = await bot.workspace(max_bytes=100_000)

    with pytest.raises(WorkspaceTooLarge):
        async with ws:
            workdir = ws.path.parent
            await ws.clone()

    assert not workdir.exists()
    assert list(bot.root.iterdir()) == []


async def test_slow_git_command_is_stopped(bot: Bot) -> None:
    async with await bot.workspace() as ws:
        await ws.clone()
        started = time.monotonic()
        with pytest.raises(GitError, match="timed out"):
            await ws.git("-c", "alias.slow=!sleep 30", "slow", timeout=0.5)
        assert time.monotonic() - started < 5


def test_branch_names_are_short_ascii_slugs() -> None:
    assert branch_name(12, "Add a login page") == "factory/issue-12-add-a-login-page"
    assert branch_name(3, "Überprüfe   Café-Menü!!") == "factory/issue-3-uberprufe-cafe-menu"
    long = branch_name(9, "Make the dashboard load faster when there are many projects")
    assert long == "factory/issue-9-make-the-dashboard-load-faster-when"
    assert len(long.removeprefix("factory/issue-9-")) <= 40
    assert branch_name(4, "日本語") == "factory/issue-4"


def test_clone_url_with_credentials_is_refused(tmp_path: Path) -> None:
    async def token() -> str:
        return "unused"

    with pytest.raises(ValueError, match="without credentials"):
        Workspace("https://x:y@github.com/o/r.git", token, GitAuthor("a", "b"), root=tmp_path)
