"""What a sandboxed command or a repository can plant for the bot's own git: none of it runs.

Each test drives the real `Workspace` against the fake GitHub's smart-HTTP server and, where a
command is involved, the real bubblewrap sandbox the coder's commands run in. Payloads append
their environment to a marker file on the host, so "nothing ran outside the sandbox" is the
marker's absence (inside the sandbox /tmp is private, so a payload running there cannot create
it); each test also checks that the push the attack rode on still went through.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import pytest

from agents.sandbox import BubblewrapSandbox, CommandResult
from agents.workspace import GitError, Workspace
from tests.fakegithub import FakeGitHub
from tests.fakegithub.gitrepo import Author
from tests.test_workspace import REPO, Bot

HOOKS = (
    "pre-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-push",
    "reference-transaction",
    "post-checkout",
    "post-index-change",
    "pre-auto-gc",
)


async def run_in_sandbox(ws: Workspace, script: str) -> CommandResult:
    """A model's `run_command`, in the sandbox the coder gets (git dir mounted read-only)."""
    sandbox = BubblewrapSandbox(ws.path, git_dir=ws.git_dir)
    result = await sandbox.run(script, cwd=ws.path, timeout_s=60)
    assert not result.timed_out, result
    return result


def payload(marker: Path) -> str:
    """Shell that leaves evidence on the host (no quotes, so it nests in config values)."""
    return f"env >> {marker}"


def plant_everything(marker: Path) -> str:
    """Shell defining `plant DIR`: makes DIR (a git dir) run `payload` through hooks, an
    fsmonitor, a clean filter, a diff driver and config.worktree, each selected for every path."""
    run = shlex.quote(payload(marker))
    hook = shlex.quote(f"#!/bin/sh\n{payload(marker)}\n")
    return f"""
plant() {{
  d=$1
  mkdir -p "$d/hooks" "$d/info" || return 1
  for h in {" ".join(HOOKS)}; do
    printf '%s' {hook} > "$d/hooks/$h" && chmod +x "$d/hooks/$h" || return 1
  done
  c="git config -f $d/config"
  $c core.hooksPath "$d/hooks" && $c core.fsmonitor {run}"; false" &&
  $c filter.evil.clean {run}"; cat" && $c filter.evil.smudge {run}"; cat" &&
  $c filter.evil.required true && $c diff.evil.textconv {run}"; cat" &&
  $c diff.external {run} && $c core.repositoryformatversion 1 &&
  $c extensions.worktreeConfig true || return 1
  git config -f "$d/config.worktree" core.fsmonitor {run}"; false" || return 1
  echo '* filter=evil diff=evil' > "$d/info/attributes"
}}
"""


def git_dir_of_the_sandbox() -> str:
    return "GD=$(git -c safe.directory='*' rev-parse --absolute-git-dir) || exit 3\n"


async def commit_and_push(ws: Workspace, name: str) -> tuple[str | None, bool]:
    """The bot's side after the model's turn: commit everything and push."""
    (ws.path / f"{name}.txt").write_text(f"{name}\n")
    sha = await ws.commit_all(f"Change {name}")
    result = await ws.push()
    return sha, result.pushed


def assert_landed(fake: FakeGitHub, branch: str, sha: str | None, name: str) -> None:
    assert sha is not None
    assert fake.branch_sha(REPO, branch) == sha
    assert fake.file_at(REPO, branch, f"{name}.txt") == f"{name}\n"
    tree = fake.git(REPO).out("ls-tree", "-r", "--name-only", sha).splitlines()
    assert not [path for path in tree if ".git" in path.split("/")]


async def other_tenant(bot: Bot, fake: FakeGitHub) -> tuple[Workspace, str]:
    """Another repository's workspace, on the same host, holding a secret commit."""
    fake.create_repo("octo-org", "other", {"SECRET.md": "other tenant's secret\n"})
    workspace = Workspace(
        fake.clone_url("octo-org/other"),
        bot.token,
        (await bot.workspace()).author,
        root=bot.root,
    )
    return workspace, fake.git("octo-org/other").rev_parse("refs/heads/main") or ""


def assert_nothing_ran(marker: Path) -> None:
    assert not marker.exists(), marker.read_text()


async def test_commondir_with_a_filter_driver_does_not_run_on_commit_or_push(
    bot: Bot, fake: FakeGitHub, tmp_path: Path
) -> None:
    """The reported attack: `commondir` pointing at a copy of the git dir whose config defines
    a clean filter, and `info/attributes` selecting it for every path."""
    marker = tmp_path / "filter-ran"
    branch = "factory/issue-1-commondir"
    script = f"""{git_dir_of_the_sandbox()}
EVIL="$PWD/.evil-common"
echo '.evil*' >> .gitignore
mkdir -p "$EVIL" && cp -r "$GD"/. "$EVIL"/ 2>/dev/null
cat >> "$EVIL/config" <<'CONFIG'
[filter "evil"]
\tclean = {payload(marker)}; cat
\trequired = true
CONFIG
mkdir -p "$EVIL/info" "$GD/info"
echo '* filter=evil' > "$EVIL/info/attributes"
echo '* filter=evil' > "$GD/info/attributes" || echo "info/attributes is read-only"
echo "$EVIL" > "$GD/commondir" || echo "commondir is read-only"
echo @@planted@@
"""
    async with await bot.workspace() as ws:
        await ws.clone()
        await ws.checkout_branch(branch)
        result = await run_in_sandbox(ws, script)
        assert "@@planted@@" in result.stdout, result
        sha, pushed = await commit_and_push(ws, "commondir")

    assert_nothing_ran(marker)
    assert "commondir is read-only" in result.stdout
    assert pushed
    assert_landed(fake, branch, sha, "commondir")


async def test_hooks_fsmonitor_filters_and_config_worktree_planted_in_git_dir_do_not_run(
    bot: Bot, fake: FakeGitHub, tmp_path: Path
) -> None:
    """Hooks (pre-commit, post-commit, pre-push, reference-transaction, ...), core.fsmonitor,
    a filter and a diff driver, config.worktree with extensions.worktreeConfig: written into
    the git dir the sandbox sees (refused: it is read-only) and into a `.git` directory that
    replaces the work tree's `.git` file (written, never read by the bot)."""
    marker = tmp_path / "planted-ran"
    branch = "factory/issue-2-planted"
    script = f"""{git_dir_of_the_sandbox()}{plant_everything(marker)}
plant "$GD" 2>/dev/null && echo "planted in the git dir"
rm -rf .git && mkdir .git && cp -r "$GD"/. .git/ 2>/dev/null
plant "$PWD/.git" && echo "planted in the work tree's .git"
"""
    async with await bot.workspace() as ws:
        await ws.clone()
        await ws.checkout_branch(branch)
        result = await run_in_sandbox(ws, script)
        assert "planted in the work tree's .git" in result.stdout, result
        sha, pushed = await commit_and_push(ws, "planted")
        # Later commands too: a restore, an exclude, a checkout of the branch again.
        await ws.git("reset", "--hard", "--quiet", sha)
        await ws.git("clean", "-fd", "--quiet")
        await ws.git("status", "--porcelain")
        await ws.checkout_branch(branch)

    assert_nothing_ran(marker)
    assert "planted in the git dir" not in result.stdout
    assert pushed
    assert_landed(fake, branch, sha, "planted")


@pytest.mark.parametrize("kind", ["file", "symlink", "directory"])
async def test_a_replaced_dot_git_is_ignored(
    bot: Bot, fake: FakeGitHub, tmp_path: Path, kind: str
) -> None:
    """The work tree's `.git` made a `gitdir:` file pointing elsewhere, a symlink, or a
    directory: each to a git dir that runs the payload every way it can."""
    marker = tmp_path / f"replaced-{kind}-ran"
    branch = f"factory/issue-3-replaced-{kind}"
    replace = {
        "file": 'echo "gitdir: $EVIL" > .git',
        "symlink": 'ln -s "$EVIL" .git',
        "directory": 'mv "$EVIL" .git',
    }[kind]
    script = f"""{git_dir_of_the_sandbox()}{plant_everything(marker)}
EVIL="$PWD/.evil"
echo '.evil*' >> .gitignore
mkdir -p "$EVIL" && cp -r "$GD"/. "$EVIL"/ 2>/dev/null
plant "$EVIL" || exit 4
rm -rf .git && {replace} && echo @@replaced@@
"""
    async with await bot.workspace() as ws:
        await ws.clone()
        await ws.checkout_branch(branch)
        result = await run_in_sandbox(ws, script)
        assert "@@replaced@@" in result.stdout, result
        sha, pushed = await commit_and_push(ws, f"replaced-{kind}")
        bots_git_dir = (await ws.git("rev-parse", "--absolute-git-dir")).strip()
        assert bots_git_dir == str(ws.git_dir)

    assert_nothing_ran(marker)
    assert pushed
    assert_landed(fake, branch, sha, f"replaced-{kind}")


async def test_alternates_cannot_lend_the_bot_another_workspaces_objects(
    bot: Bot, fake: FakeGitHub, tmp_path: Path
) -> None:
    """`objects/info/alternates` naming another tenant's object store: the bot's git dir gets
    none, and the bot's git cannot read a single object from there."""
    branch = "factory/issue-4-alternates"
    victim, secret_sha = await other_tenant(bot, fake)
    async with victim, await bot.workspace() as ws:
        await victim.clone()
        assert (await victim.head()) == secret_sha
        objects = victim.git_dir / "objects"
        script = f"""{git_dir_of_the_sandbox()}
for d in "$GD" "$PWD/.git"; do
  mkdir -p "$d/objects/info" 2>/dev/null
  echo {shlex.quote(str(objects))} > "$d/objects/info/alternates" && echo "planted in $d"
done
rm -rf .git && mkdir -p .git/objects/info && cp -r "$GD"/. .git/ 2>/dev/null
echo {shlex.quote(str(objects))} > .git/objects/info/alternates && echo @@planted@@
"""
        await ws.clone()
        await ws.checkout_branch(branch)
        result = await run_in_sandbox(ws, script)
        assert "@@planted@@" in result.stdout, result
        sha, pushed = await commit_and_push(ws, "alternates")
        with pytest.raises(GitError):
            await ws.git("cat-file", "-e", secret_sha)
        assert not (ws.git_dir / "objects" / "info" / "alternates").exists()
        assert f"planted in {ws.git_dir}" not in result.stdout

    assert pushed
    assert_landed(fake, branch, sha, "alternates")


async def test_a_nested_repository_is_removed_before_committing(
    bot: Bot, fake: FakeGitHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`git init sub` with its own fsmonitor and hooks, a `.git` file pointing at such a git
    dir, and a `.GIT` directory: none runs, none becomes a gitlink, their files are committed
    as plain files and the bot says what it removed."""
    marker = tmp_path / "nested-ran"
    branch = "factory/issue-5-nested"
    run = shlex.quote(payload(marker) + "; false")
    hook = shlex.quote(f"#!/bin/sh\n{payload(marker)}\n")
    script = f"""
set -e
g="git -c safe.directory=* -c core.fsmonitor=false -c user.name=m -c user.email=m@example.com"
mkdir sub && echo inner > sub/inner.txt
$g -C sub init -q && $g -C sub add inner.txt && $g -C sub commit -qm inner
git -C sub config core.fsmonitor {run}
git -C sub config diff.ignoreSubmodules none
mkdir -p sub/.git/hooks
for h in {" ".join(HOOKS)}; do
  printf '%s' {hook} > sub/.git/hooks/$h && chmod +x sub/.git/hooks/$h
done
echo '.evil*' >> .gitignore
mkdir sub2 && echo two > sub2/two.txt
cp -r sub/.git "$PWD/.evil-sub2" && echo "gitdir: $PWD/.evil-sub2" > sub2/.git
mkdir -p sub3/.GIT && cp -r sub/.git/. sub3/.GIT/ && echo three > sub3/three.txt
echo @@planted@@
"""
    async with await bot.workspace() as ws:
        await ws.clone()
        await ws.checkout_branch(branch)
        result = await run_in_sandbox(ws, script)
        assert "@@planted@@" in result.stdout, result
        with caplog.at_level(logging.WARNING, logger="agents.workspace"):
            sha, pushed = await commit_and_push(ws, "nested")
        found = ws.path.rglob("*")
        left = sorted(p.relative_to(ws.path).as_posix() for p in found if p.name.lower() == ".git")

    assert_nothing_ran(marker)
    assert pushed
    assert_landed(fake, branch, sha, "nested")
    entries = fake.git(REPO).out("ls-tree", "-r", sha).splitlines()
    assert not [line for line in entries if " commit " in line]  # no gitlink
    assert fake.file_at(REPO, branch, "sub/inner.txt") == "inner\n"
    assert fake.file_at(REPO, branch, "sub3/three.txt") == "three\n"
    assert left == [".git"]
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "sub/.git" in warning and "sub2/.git" in warning and "sub3/.GIT" in warning


def commit_submodule(fake: FakeGitHub, url: str, gitlink: str, marker: Path) -> str:
    """The attacker's merged commit on main: `.gitmodules` naming `url` (with an `update`
    command too) and a gitlink `vendor/lib` at `gitlink`."""
    repo = fake.git(REPO)
    gitmodules = (
        f'[submodule "lib"]\n\tpath = vendor/lib\n\turl = {url}\n\tupdate = !{payload(marker)}\n'
    )
    blob = repo.out("hash-object", "-w", "--stdin", input=gitmodules.encode()).strip()
    index = {"GIT_INDEX_FILE": str(repo.path / "attack-index")}
    repo.git("read-tree", "main", env=index)
    repo.git("update-index", "--add", "--cacheinfo", f"100644,{blob},.gitmodules", env=index)
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{gitlink},vendor/lib", env=index)
    tree = repo.out("write-tree", env=index).strip()
    (repo.path / "attack-index").unlink()
    parent = repo.rev_parse("refs/heads/main")
    assert parent is not None
    sha = repo.commit_tree(tree, [parent], "Add a submodule", Author("mallory", "m@example.com"))
    repo.update_ref("refs/heads/main", sha, parent)
    return sha


@pytest.mark.parametrize("scheme", ["ext", "file"])
async def test_gitmodules_urls_are_never_fetched(
    bot: Bot, fake: FakeGitHub, tmp_path: Path, scheme: str
) -> None:
    """`.gitmodules` with an `ext::` URL that runs a command, or a `file://` URL at another
    workspace's git dir: the bot clones, works, commits and pushes; nothing runs or is read."""
    marker = tmp_path / f"submodule-{scheme}-ran"
    branch = f"factory/issue-6-submodule-{scheme}"
    victim, secret_sha = await other_tenant(bot, fake)
    async with victim, await bot.workspace() as ws:
        await victim.clone()
        url = {
            "ext": f"ext::sh -c {payload(marker).replace(' ', '% ')}",
            "file": f"file://{victim.git_dir}",
        }[scheme]
        commit_submodule(fake, url, secret_sha, marker)
        await ws.clone()
        await ws.checkout_branch(branch)
        sha, pushed = await commit_and_push(ws, f"submodule-{scheme}")
        await ws.git("reset", "--hard", "--quiet", sha)
        await ws.git("clean", "-fd", "--quiet")
        vendored = sorted(p.name for p in (ws.path / "vendor" / "lib").iterdir())
        with pytest.raises(GitError):
            await ws.git("cat-file", "-e", secret_sha)

    assert_nothing_ran(marker)
    assert vendored == []
    assert pushed
    assert_landed(fake, branch, sha, f"submodule-{scheme}")


async def test_gitattributes_cannot_select_drivers_the_hosts_configuration_defines(
    bot: Bot, fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A committed `.gitattributes` (and one the model writes) selecting filter, diff and merge
    drivers, LFS among them, that the bot's host defines in every configuration file git could
    read (the user's ~/.gitconfig, XDG config and attributes, GIT_CONFIG_SYSTEM, variables in
    the environment): the bot's git reads none, and LFS pointer files stay pointers."""
    marker = tmp_path / "driver-ran"
    branch = "factory/issue-7-attributes"
    pointer = (
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
        "size 12345\n"
    )
    fake.push_files(
        REPO,
        "main",
        {
            ".gitattributes": (
                "* filter=evil diff=evil merge=evil\n*.bin filter=lfs diff=lfs -text\n"
            ),
            "big.bin": pointer,
        },
    )
    # The fake GitHub's own git reads this host configuration too (it shares the process
    # environment), so the payloads only leave their mark when run in a workspace of the bot's.
    guard = f'case "$PWD" in {bot.root}/*) {payload(marker)};; esac\n'
    scripts = {
        "run": guard,  # hooks, fsmonitor, diff and merge drivers
        "filter": guard + "exec cat\n",  # clean and smudge: content on stdin
        "textconv": guard + 'exec cat "$1"\n',
    }
    for name, body in scripts.items():
        (tmp_path / name).write_text(f"#!/bin/sh\n{body}")
        (tmp_path / name).chmod(0o755)
    run, filter_, textconv = (tmp_path / name for name in scripts)
    drivers = (
        '[filter "evil"]\n'
        f"\tclean = {filter_}\n\tsmudge = {filter_}\n\trequired = true\n"
        '[filter "lfs"]\n'
        f"\tclean = {filter_}\n\tsmudge = {filter_}\n\tprocess = {run}\n\trequired = true\n"
        f'[diff "evil"]\n\ttextconv = {textconv}\n\tcommand = {run}\n'
        f'[merge "evil"]\n\tdriver = {run}\n'
        f"[core]\n\tfsmonitor = {run}\n\thooksPath = {tmp_path / 'hooks'}\n"
    )
    home = tmp_path / "home"
    (home / ".config" / "git").mkdir(parents=True)
    for path in (home / ".gitconfig", home / ".config" / "git" / "config", tmp_path / "system"):
        path.write_text(drivers)
    (home / ".config" / "git" / "attributes").write_text("* filter=evil diff=evil\n")
    (tmp_path / "hooks").mkdir()
    for name in HOOKS:
        (tmp_path / "hooks" / name).symlink_to(run)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_SYSTEM", str(tmp_path / "system"))
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.fsmonitor")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", str(run))
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", str(run))

    async with await bot.workspace() as ws:
        await ws.clone()
        await ws.checkout_branch(branch)
        result = await run_in_sandbox(
            ws,
            "printf '*.txt filter=lfs diff=evil merge=evil\\n' > sub.gitattributes && "
            "mkdir -p docs && mv sub.gitattributes docs/.gitattributes && echo written",
        )
        assert "written" in result.stdout, result
        (ws.path / "docs" / "notes.txt").write_text("notes\n")
        sha, pushed = await commit_and_push(ws, "attributes")
        await ws.git("diff", "HEAD~1", "--stat")
        checked_out = (ws.path / "big.bin").read_text()

    assert_nothing_ran(marker)
    assert checked_out == pointer
    assert pushed
    assert_landed(fake, branch, sha, "attributes")
    assert fake.file_at(REPO, branch, "docs/notes.txt") == "notes\n"
