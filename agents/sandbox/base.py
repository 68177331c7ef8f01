"""What every sandbox backend promises: the result type, the protocol, the starting environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

# The only variables a sandboxed command sees besides those the caller passes explicitly.
# Nothing is inherited from os.environ: the bot's secrets (webhook secret, API keys) live there.
BASE_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TMPDIR": "/tmp",
    # The workspace's git directory is the bot's (read-only here) while the command runs as
    # another user; without this, `git status` in the sandbox refuses "dubious ownership".
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "safe.directory",
    "GIT_CONFIG_VALUE_0": "*",
}


class SandboxUnavailable(RuntimeError):
    """The requested backend cannot run commands on this host."""


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool
    truncated: bool
    # A sandbox limit the command ran into (disk quota, memory, processes, file size), in words;
    # the same words end its stderr, so every reader of the output sees them.
    limit: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@runtime_checkable
class Sandbox(Protocol):
    name: str

    async def run(
        self,
        command: str,
        *,
        cwd: Path,
        timeout_s: float = 300,
        env: Mapping[str, str] | None = None,
        network: bool = False,
    ) -> CommandResult:
        """Run `command` with a shell in `cwd` (inside the workspace) and report how it ended.

        `network=True` is for a repository's setup steps only (installing dependencies before
        the coder starts): the command may then reach the network, and everything else (the
        scrubbed environment, hidden paths, limits, read-only system, workspace-only writes,
        the timeout) stays as it is. Agent commands and validation gates never ask for it.
        """
        ...


def command_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The environment for one command: BASE_ENV overlaid with the caller's variables, validated."""
    env = dict(BASE_ENV)
    for key, value in (extra or {}).items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise ValueError(f"invalid environment variable name or value: {key!r}")
        env[key] = value
    return env


def confined_cwd(workspace_root: Path, cwd: Path) -> Path:
    """Resolve cwd and insist it lies inside the workspace, the only place a command may write."""
    root = workspace_root.resolve()
    resolved = cwd.resolve()
    if resolved != root and root not in resolved.parents:
        raise ValueError(f"cwd {cwd} is outside the sandbox workspace {root}")
    if not resolved.is_dir():
        raise ValueError(f"cwd {cwd} is not a directory")
    return resolved
