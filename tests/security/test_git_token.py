"""The installation token reaches only the git commands that talk to the remote, and no file.

A `git` wrapper first on PATH records, for every git command the bot starts, its arguments and
whether FACTORY_GIT_TOKEN was in its environment, then runs the real git; the bot's work is the
real `Workspace` against the fake GitHub, with a command in the real sandbox in between.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.checkout_setup import exclude_leftovers, exclude_untracked
from agents.sandbox import BubblewrapSandbox
from tests.fakegithub import FakeGitHub
from tests.test_workspace import REPO, Bot

# Commands that talk to the remote: a checkout too, as in a partial clone it may fetch file
# versions the clone left on the server.
NETWORK = {"clone", "fetch", "ls-remote", "push", "checkout"}
LOCAL = {"config", "add", "diff", "commit", "rev-parse", "ls-files", "reset", "clean"}


@dataclass(frozen=True)
class Call:
    command: str
    argv: tuple[str, ...]
    token: str  # the value FACTORY_GIT_TOKEN had, "" when unset


def git_wrapper(directory: Path, log: Path) -> None:
    directory.mkdir()
    real = shutil.which("git")
    assert real is not None
    wrapper = directory / "git"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'{{ printf "== %s\\n" "$FACTORY_GIT_TOKEN"; for a in "$@"; do printf "arg %s\\n" "$a"; '
        f"done; }} >> {log}\n"
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)


def bot_calls(log: Path) -> list[Call]:
    """The recorded calls that came from the bot (they carry its hardened settings); the fake
    GitHub's own git commands are left out."""
    calls = []
    for record in log.read_text().split("== ")[1:]:
        head, *args = record.splitlines()
        argv = tuple(a.removeprefix("arg ") for a in args)
        if "core.hooksPath=/dev/null" not in argv:
            continue
        rest = list(argv)
        while rest and (rest[0] == "-c" or rest[0].startswith("--")):
            rest = rest[2:] if rest[0] == "-c" else rest[1:]
        calls.append(Call(rest[0], argv, head.strip()))
    return calls


async def test_only_commands_that_talk_to_the_remote_get_the_token(
    bot: Bot, fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "git-calls"
    git_wrapper(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    branch = "factory/issue-8-token"

    async with await bot.workspace() as ws:
        await ws.clone()
        exclude_leftovers(ws)
        await ws.checkout_branch(branch)
        (ws.path / "setup-output.txt").write_text("written by a setup step\n")
        await exclude_untracked(ws)
        (ws.path / "change.txt").write_text("change\n")
        await ws.commit_all("Change")
        await ws.git("reset", "--hard", "--quiet")
        await ws.git("clean", "-fd", "--quiet")
        await ws.push()
    async with await bot.workspace() as again:  # a retried job resumes the pushed branch
        await again.clone()
        await again.checkout_branch(branch)
    token = await bot.token()

    calls = bot_calls(log)
    with_token = {c.command for c in calls if c.token}
    without = {c.command for c in calls if not c.token}
    assert with_token == NETWORK
    assert LOCAL <= without
    assert not with_token & without
    assert {c.token for c in calls if c.token} == {token}
    for call in calls:
        helper = any(a.startswith("credential.helper=!") for a in call.argv)
        assert helper == (call.command in NETWORK), call
        assert not any(token in a for a in call.argv)
    assert fake.file_at(REPO, branch, "change.txt") == "change\n"
    # exclude_untracked wrote the git dir's info/exclude, and the bot's git honoured it.
    assert fake.file_at(REPO, branch, "setup-output.txt") is None


async def test_the_token_is_in_no_file_under_the_workspace(
    bot: Bot, fake: FakeGitHub, tmp_path: Path
) -> None:
    """After a whole run, including a command that dumps what the sandbox sees (its
    environment, the git configuration, the work tree's `.git`) into the work tree."""
    branch = "factory/issue-9-token-on-disk"
    dump = (
        "env > seen-env.txt; git -c safe.directory='*' config --list --show-origin "
        "> seen-config.txt 2>&1; cat .git > seen-dot-git.txt; "
        "cat /proc/*/environ > seen-procs.txt 2>/dev/null; true"
    )
    async with await bot.workspace() as ws:
        await ws.clone()
        await ws.checkout_branch(branch)
        sandbox = BubblewrapSandbox(ws.path, git_dir=ws.git_dir)
        result = await sandbox.run(dump, cwd=ws.path, timeout_s=60)
        assert result.ok, result
        sha = await ws.commit_all("What the sandbox saw")
        await ws.push()
        token = await bot.token()
        files = [p for p in ws.path.parent.rglob("*") if p.is_file() and not p.is_symlink()]
        holding = [p for p in files if token.encode() in p.read_bytes()]
        seen = (ws.path / "seen-env.txt").read_text()

    assert token.startswith("ghs_") and len(files) > 10
    assert holding == []
    assert "PATH=" in seen and "FACTORY_GIT_TOKEN" not in seen
    assert fake.branch_sha(REPO, branch) == sha
    found = fake.git(REPO).git("grep", "-l", "-F", "-e", token, sha, check=False)
    assert (found.returncode, found.stdout) == (1, b"")  # 1: no match
