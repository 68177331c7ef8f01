"""Each hardened git setting does what it is there for, on the git installed here.

For every entry of `HARDENED_CONFIG` there is a repository configured the way an attacker (or
a careless host) would configure it, and a command that then runs a payload, spawns git inside a
submodule, or otherwise does what the setting forbids. Each case runs three times: plain git
(the vector is real: it fires), git with only that one setting on the command line (git honours
it: it does not fire), and the bot's full `git_argv`/`git_env` (it does not fire either).
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from knowledge.hardened_git import HARDENED_CONFIG, git_argv, git_env

IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


@dataclass
class Lab:
    """A superproject `repo` with a submodule `sub`, both with file remotes, and a payload
    script that appends to `marker` when anything runs it."""

    root: Path
    repo: Path
    remote: Path
    payload: Path
    marker: Path
    trace: Path
    unauthorised_url: str

    def plain_env(self) -> dict[str, str]:
        return {
            "PATH": os.environ["PATH"],
            "HOME": str(self.root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_TRACE": str(self.trace),
            **IDENTITY,
        }

    def git(self, *args: str, cwd: Path | None = None) -> str:
        """Setup: plain git, file transport allowed."""
        return subprocess.run(
            ["git", "-c", "protocol.file.allow=always", *args],
            cwd=cwd or self.repo,
            env=self.plain_env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def config(self, key: str, value: str) -> None:
        self.git("config", key, value)

    def fired(self) -> str:
        return self.marker.read_text() if self.marker.exists() else ""

    def traced(self) -> str:
        return self.trace.read_text() if self.trace.exists() else ""

    def reset_evidence(self) -> None:
        self.marker.unlink(missing_ok=True)
        self.trace.unlink(missing_ok=True)


class _Unauthorised(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="x"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorised)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    marker = tmp_path / "marker"
    payload = tmp_path / "payload.sh"
    payload.write_text(f'#!/bin/sh\necho "ran: $0 $*" >> {marker}\nexit 1\n')
    payload.chmod(0o755)
    lab = Lab(
        root=tmp_path,
        repo=tmp_path / "repo",
        remote=tmp_path / "remote.git",
        payload=payload,
        marker=marker,
        trace=tmp_path / "trace",
        unauthorised_url=f"http://127.0.0.1:{server.server_address[1]}/repo.git",
    )
    upstream = tmp_path / "sub-upstream"
    lab.git("init", "-q", "-b", "main", str(upstream), cwd=tmp_path)
    (upstream / "inner.txt").write_text("needle in the submodule\n")
    lab.git("add", "inner.txt", cwd=upstream)
    lab.git("commit", "-qm", "inner", cwd=upstream)
    lab.git("init", "-q", "-b", "main", str(lab.repo), cwd=tmp_path)
    (lab.repo / "top.txt").write_text("top\n")
    lab.git("add", "top.txt")
    lab.git("commit", "-qm", "top")
    lab.git("submodule", "add", "-q", str(upstream), "sub")
    lab.git("commit", "-qm", "add sub")
    lab.git("clone", "-q", "--bare", str(lab.repo), str(lab.remote), cwd=tmp_path)
    lab.git("remote", "add", "origin", str(lab.remote))
    lab.git("fetch", "-q", "origin")
    yield lab
    server.shutdown()
    server.server_close()


@dataclass(frozen=True)
class Case:
    setting: str
    # Configures the repository the attacker's way; returns the command's arguments.
    arrange: Callable[[Lab], list[str]]
    # Whether the forbidden thing happened.
    happened: Callable[[Lab, subprocess.CompletedProcess[str]], bool]


def _ran_payload(lab: Lab, _: subprocess.CompletedProcess[str]) -> bool:
    return bool(lab.fired())


def _hooks(lab: Lab) -> list[str]:
    hooks = lab.root / "hooks"
    hooks.mkdir()
    for name in ("pre-commit", "post-commit"):
        shutil.copy(lab.payload, hooks / name)
    lab.config("core.hooksPath", str(hooks))
    return ["commit", "--allow-empty", "-qm", "hooked"]


def _fsmonitor(lab: Lab) -> list[str]:
    lab.config("core.fsmonitor", str(lab.payload))
    return ["status", "--porcelain"]


def _attributes_file(lab: Lab) -> list[str]:
    attributes = lab.root / "attributes"
    attributes.write_text("* filter=evil\n")
    lab.config("core.attributesFile", str(attributes))
    lab.config("filter.evil.clean", str(lab.payload))
    (lab.repo / "new.txt").write_text("new\n")
    return ["add", "new.txt"]


def _excludes_file(lab: Lab) -> list[str]:
    excludes = lab.root / "ignore"
    excludes.write_text("*.secret\n")
    lab.config("core.excludesFile", str(excludes))
    (lab.repo / "kept.secret").write_text("x\n")
    return ["ls-files", "--others", "--exclude-standard"]


def _replace_refs(lab: Lab) -> list[str]:
    lab.git("commit", "--allow-empty", "-qm", "replacement")
    lab.git("replace", "HEAD~1", "HEAD")
    return ["log", "-1", "--format=%s", "HEAD~1"]


def _submodule_recurse(lab: Lab) -> list[str]:
    lab.config("submodule.recurse", "true")
    return ["grep", "-l", "needle"]


def _modified_submodule(lab: Lab) -> None:
    (lab.repo / "sub" / "inner.txt").write_text("changed\n")
    lab.git("config", "core.fsmonitor", str(lab.payload), cwd=lab.repo / "sub")


def _ignore_submodules(lab: Lab) -> list[str]:
    _modified_submodule(lab)
    lab.config("diff.ignoreSubmodules", "none")
    return ["diff", "--quiet"]


def _submodule_summary(lab: Lab) -> list[str]:
    lab.git("commit", "--allow-empty", "-qm", "moved", cwd=lab.repo / "sub")
    lab.config("status.submoduleSummary", "true")
    return ["status"]


def _fetch_recurse(lab: Lab) -> list[str]:
    lab.config("fetch.recurseSubmodules", "yes")
    return ["fetch", "-q", "origin"]


def _push_recurse(lab: Lab) -> list[str]:
    lab.git("commit", "--allow-empty", "-qm", "unpushed", cwd=lab.repo / "sub")
    lab.git("commit", "-qam", "bump sub")
    lab.config("push.recurseSubmodules", "on-demand")
    return ["push", "-q", "origin", "HEAD:refs/heads/bumped"]


def _gpg(kind: str) -> Callable[[Lab], list[str]]:
    def arrange(lab: Lab) -> list[str]:
        lab.config(f"{kind}.gpgSign", "true")
        lab.config("gpg.program", str(lab.payload))
        if kind == "commit":
            return ["commit", "--allow-empty", "-qm", "signed?"]
        return ["tag", "-m", "signed?", "v1"]

    return arrange


def _loose_objects(lab: Lab) -> None:
    for number in range(600):
        (lab.repo / f"f{number}.txt").write_text(f"{number}\n")
    lab.git("add", ".")
    lab.config("gc.auto", "1")
    lab.config("gc.autoDetach", "false")


def _gc_auto(lab: Lab) -> list[str]:
    _loose_objects(lab)
    return ["commit", "-qm", "many"]


def _credential_helper(lab: Lab) -> list[str]:
    lab.config("credential.helper", f"!{lab.payload}")
    return ["ls-remote", lab.unauthorised_url]


def _protocol(scheme: str) -> Callable[[Lab], list[str]]:
    def arrange(lab: Lab) -> list[str]:
        # What a configuration file may allow by name is refused all the same.
        lab.config(f"protocol.{scheme}.allow", "always")
        if scheme == "ext":
            return ["ls-remote", f"ext::{lab.payload}"]
        return ["ls-remote", f"file://{lab.remote}"]

    return arrange


def _spawned_in_submodule(lab: Lab, _: subprocess.CompletedProcess[str]) -> bool:
    return "run_command: cd sub" in lab.traced() or "modules/sub;" in lab.traced()


CASES = [
    Case("core.hooksPath=/dev/null", _hooks, _ran_payload),
    Case("core.fsmonitor=false", _fsmonitor, _ran_payload),
    Case("core.attributesFile=/dev/null", _attributes_file, _ran_payload),
    Case(
        "core.excludesFile=/dev/null",
        _excludes_file,
        lambda lab, result: "kept.secret" not in result.stdout,
    ),
    Case(
        "core.useReplaceRefs=false",
        _replace_refs,
        lambda lab, result: result.stdout.strip() == "replacement",
    ),
    Case(
        "submodule.recurse=false",
        _submodule_recurse,
        lambda lab, result: "sub/inner.txt" in result.stdout,
    ),
    Case(
        "diff.ignoreSubmodules=all",
        _ignore_submodules,
        lambda lab, result: bool(lab.fired()) or result.returncode != 0,
    ),
    Case(
        "status.submoduleSummary=false",
        _submodule_summary,
        lambda lab, result: "submodule summary" in lab.traced(),
    ),
    Case("fetch.recurseSubmodules=false", _fetch_recurse, _spawned_in_submodule),
    Case("push.recurseSubmodules=no", _push_recurse, _spawned_in_submodule),
    Case("commit.gpgSign=false", _gpg("commit"), _ran_payload),
    Case("tag.gpgSign=false", _gpg("tag"), _ran_payload),
    Case("gc.auto=0", _gc_auto, lambda lab, result: "run_command: git repack" in lab.traced()),
    Case(
        "maintenance.auto=false",
        _gc_auto,
        lambda lab, result: "maintenance run --auto" in lab.traced(),
    ),
    Case("credential.helper=", _credential_helper, _ran_payload),
    Case("protocol.ext.allow=never", _protocol("ext"), _ran_payload),
    Case(
        "protocol.file.allow=never",
        _protocol("file"),
        lambda lab, result: result.returncode == 0,
    ),
]


def _run(lab: Lab, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    lab.reset_evidence()
    return subprocess.run(
        argv, cwd=lab.repo, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("case", CASES, ids=[c.setting for c in CASES])
def test_git_honours_the_setting(lab: Lab, case: Case) -> None:
    assert case.setting in HARDENED_CONFIG
    args = case.arrange(lab)

    plain = _run(lab, ["git", *args], lab.plain_env())
    assert case.happened(lab, plain), ("the vector did not fire", plain, lab.traced())

    alone = _run(lab, ["git", "-c", case.setting, *args], lab.plain_env())
    assert not case.happened(lab, alone), ("the setting alone", alone, lab.fired())

    hardened_env = git_env({**IDENTITY, "GIT_TRACE": str(lab.trace)})
    hardened = _run(
        lab, git_argv(*args, git_dir=lab.repo / ".git", work_tree=lab.repo), hardened_env
    )
    assert not case.happened(lab, hardened), ("the bot's git", hardened, lab.fired())


def test_every_setting_is_proven(lab: Lab) -> None:
    proven = {case.setting for case in CASES}
    # Proven elsewhere: the credential reset by the case above (its helper is the last one
    # configured); safe.directory and the protocol default by the tests below.
    elsewhere = {
        "safe.directory=*",
        "protocol.allow=never",
        "protocol.ssh.allow=never",
        "protocol.git.allow=never",
    }
    assert set(HARDENED_CONFIG) - proven - elsewhere == set()


def test_only_the_allowed_protocol_is_used(lab: Lab) -> None:
    """protocol.allow=never: a scheme nobody named (file, which git allows by default when the
    user asks) is refused; the one the caller allows works."""
    url = f"file://{lab.remote}"
    plain = _run(lab, ["git", "ls-remote", url], lab.plain_env())
    assert plain.returncode == 0
    refused = _run(lab, ["git", "-c", "protocol.allow=never", "ls-remote", url], lab.plain_env())
    assert "transport 'file' not allowed" in refused.stderr
    env = git_env()
    for scheme in ("ssh", "git"):
        argv = git_argv(
            "ls-remote", f"{scheme}://127.0.0.1:9/x", git_dir=lab.repo / ".git", work_tree=lab.repo
        )
        blocked = _run(lab, argv, env)
        assert f"transport '{scheme}' not allowed" in blocked.stderr
    argv = git_argv(
        "ls-remote", url, git_dir=lab.repo / ".git", work_tree=lab.repo, protocols=("file",)
    )
    allowed = _run(lab, argv, env)
    assert allowed.returncode == 0, allowed.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the work tree to another uid")
def test_a_work_tree_owned_by_another_uid_is_still_usable(lab: Lab) -> None:
    """The sandbox may own the work tree; found by discovery git would refuse it as dubious,
    `safe.directory=*` (or naming the git dir, as the bot always does) accepts it."""
    for path in [lab.repo, *lab.repo.rglob("*")]:
        os.lchown(path, 4242, 4242)
    refused = _run(lab, ["git", "status", "--porcelain"], lab.plain_env())
    assert "dubious ownership" in refused.stderr
    accepted = _run(lab, ["git", "-c", "safe.directory=*", "status"], lab.plain_env())
    assert accepted.returncode == 0, accepted.stderr
    explicit = _run(
        lab, git_argv("status", git_dir=lab.repo / ".git", work_tree=lab.repo), git_env()
    )
    assert explicit.returncode == 0, explicit.stderr


def test_the_environment_keeps_no_host_configuration(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's and the system's git configuration, and configuration passed in variables,
    never reach the bot's git: git_env drops them, and GIT_CONFIG_NOSYSTEM/GIT_CONFIG_GLOBAL
    keep git from reading the files even when HOME or GIT_CONFIG_SYSTEM are set."""
    evil = lab.root / "evil.gitconfig"
    evil.write_text(f"[core]\n\tfsmonitor = {lab.payload}\n")
    home = lab.root / "home"
    (home / ".config" / "git").mkdir(parents=True)
    shutil.copy(evil, home / ".gitconfig")
    shutil.copy(evil, home / ".config" / "git" / "config")
    variables = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "GIT_CONFIG_SYSTEM": str(evil),
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "core.fsmonitor",
        "GIT_CONFIG_VALUE_0": str(lab.payload),
        "GIT_CONFIG_PARAMETERS": f"'core.fsmonitor'='{lab.payload}'",
        "GIT_DIR": str(lab.root / "elsewhere"),
        "GIT_EXTERNAL_DIFF": str(lab.payload),
        "FACTORY_WEBHOOK_SECRET": "not for git",
    }
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    status = ["git", "status", "--porcelain"]
    plain = _run(lab, status, {**os.environ, "GIT_DIR": str(lab.repo / ".git")})
    assert lab.fired(), plain

    env = git_env()
    assert not set(variables) & set(env)
    hardened = _run(lab, git_argv("status", git_dir=lab.repo / ".git", work_tree=lab.repo), env)
    assert hardened.returncode == 0, hardened.stderr
    assert not lab.fired()

    # Even handed HOME and a system file explicitly, git reads neither.
    files = git_env({"HOME": str(home), "GIT_CONFIG_SYSTEM": str(evil)})
    _run(lab, ["git", "status", "--porcelain"], files)
    assert not lab.fired()
