"""Local sandbox backends, strongest first: bubblewrap, unshare, plain subprocess with rlimits."""

from __future__ import annotations

import shutil
import sys
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

from agents.sandbox.base import BASE_ENV, CommandResult, command_env, confined_cwd
from agents.sandbox.process import ResourceLimits, run_argv

_PROBE_TIMEOUT_S = 10.0
# What name resolution reads; see resolver_binds.
_RESOLVER_FILES: tuple[Path, ...] = (Path("/etc/resolv.conf"), Path("/etc/hosts"))

# Credential stores under the bot user's home. The rest of home stays visible (read-only) because
# toolchains often live there (pyenv, rustup, nvm) and the coder's test commands need them.
CREDENTIALS_IN_HOME: tuple[str, ...] = (
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config",
    ".docker",
    ".kube",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".yarnrc",
    ".gem/credentials",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".terraform.d",
    ".vault-token",
)


def default_hidden_paths() -> list[Path]:
    home = Path.home()
    return [home / name for name in CREDENTIALS_IN_HOME]


def _default_shell() -> str:
    # Models write bash; fall back to POSIX sh where bash is not installed.
    return shutil.which("bash") or "/bin/sh"


class _LocalSandbox(ABC):
    """Shared plumbing: validate cwd, build the environment, wrap the command, run it bounded."""

    name = "local"

    def __init__(
        self,
        workspace_root: Path,
        *,
        limits: ResourceLimits | None = None,
        output_limit: int = 64_000,
        shell: str | None = None,
    ) -> None:
        self.workspace_root = workspace_root.resolve()
        self.limits = limits or ResourceLimits()
        self.output_limit = output_limit
        self.shell = shell or _default_shell()

    async def run(
        self,
        command: str,
        *,
        cwd: Path,
        timeout_s: float = 300,
        env: Mapping[str, str] | None = None,
        network: bool = False,
    ) -> CommandResult:
        workdir = confined_cwd(self.workspace_root, cwd)
        child_env = command_env(env)
        if env is None or "PATH" not in env:
            # Validation gates say `python -m pytest`: on the host that means the Python the
            # bot runs on (its directory first), as in a developer's activated virtualenv.
            child_env["PATH"] = f"{Path(sys.executable).parent}:{child_env['PATH']}"
        return await run_argv(
            self._argv(command, workdir, child_env, network=network),
            command=command,
            cwd=workdir,
            env=self._process_env(child_env),
            timeout_s=timeout_s,
            limits=self.limits,
            output_limit=self.output_limit,
        )

    def probe(self) -> bool:
        """True when this backend can run a trivial command here: make_sandbox's self-test."""
        argv = self._argv("true", self.workspace_root, dict(BASE_ENV), network=False)
        try:
            completed = subprocess.run(
                argv,
                cwd=self.workspace_root,
                env=self._process_env(dict(BASE_ENV)),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_PROBE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return completed.returncode == 0

    @abstractmethod
    def _argv(
        self, command: str, cwd: Path, env: Mapping[str, str], *, network: bool
    ) -> list[str]: ...

    def _process_env(self, env: Mapping[str, str]) -> dict[str, str]:
        return dict(env)


class BubblewrapSandbox(_LocalSandbox):
    """bubblewrap: the whole host read-only, only the workspace writable, no network, no secrets.

    Every namespace is unshared (network, pid, ipc, uts, user, cgroup), so connects to 127.0.0.1
    fail and the command cannot see or signal host processes; it has no capabilities and a cleared
    environment. /tmp and /run are empty tmpfs: /run holds Unix sockets (PostgreSQL, Docker,
    MySQL) that a read-only bind would still let a process connect to, bypassing the network
    namespace. `hidden_paths` (by default the credential stores in the bot user's home, see
    CREDENTIALS_IN_HOME) are covered too: directories by an empty tmpfs, files by /dev/null.
    Everything else on the host is readable; Unix sockets elsewhere on the host filesystem stay
    reachable, so hide their directories (and any secrets file the bot reads) via hidden_paths.

    With `network=True` (setup steps) the host's network namespace is kept (`--share-net`), so
    the command reaches whatever the host reaches, loopback services included; the resolver
    configuration is made visible when it lives under the hidden /run. Nothing else changes.
    """

    name = "bwrap"

    def __init__(
        self,
        workspace_root: Path,
        *,
        limits: ResourceLimits | None = None,
        output_limit: int = 64_000,
        shell: str | None = None,
        hidden_paths: Sequence[Path] | None = None,
        bwrap_path: str | None = None,
    ) -> None:
        super().__init__(workspace_root, limits=limits, output_limit=output_limit, shell=shell)
        self.bwrap_path = bwrap_path or shutil.which("bwrap") or "bwrap"
        self.hidden_paths = list(default_hidden_paths() if hidden_paths is None else hidden_paths)

    def _argv(
        self, command: str, cwd: Path, env: Mapping[str, str], *, network: bool
    ) -> list[str]:
        argv = [self.bwrap_path, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        argv += ["--tmpfs", "/tmp"]
        if Path("/run").is_dir() and not Path("/run").is_symlink():
            argv += ["--tmpfs", "/run"]
            if network:
                argv += resolver_binds(_RESOLVER_FILES, masked=Path("/run"))
        # Checked per command, so a credential file created after start-up is hidden too; resolved,
        # so a symlinked store is hidden where its contents really live.
        present = dict.fromkeys(p.resolve() for p in self.hidden_paths if p.exists())
        for hidden in present:
            if hidden.is_dir():
                argv += ["--tmpfs", str(hidden)]
            else:
                argv += ["--ro-bind", "/dev/null", str(hidden)]
        # The bot's own Python (a venv in a checkout under /tmp, say) stays usable for gates.
        for root in _toolchain_roots():
            if any(root.is_relative_to(p) for p in (Path("/tmp"), Path("/run"))):
                argv += ["--ro-bind", str(root), str(root)]
        # Mounted last so it shows through /tmp or a hidden directory when the workspace is inside.
        argv += ["--bind", str(self.workspace_root), str(self.workspace_root)]
        argv += ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        if network:
            argv += ["--share-net"]
        argv += ["--hostname", "sandbox", "--clearenv"]
        for key, value in env.items():
            argv += ["--setenv", key, value]
        argv += ["--chdir", str(cwd), "--", self.shell, "-c", command]
        return argv

    def _process_env(self, env: Mapping[str, str]) -> dict[str, str]:
        # bwrap itself gets nothing worth stealing; the command's variables go in via --setenv.
        return {"PATH": BASE_ENV["PATH"]}


class UnshareSandbox(_LocalSandbox):
    """util-linux `unshare`: a private network and pid namespace, a scrubbed environment, rlimits.

    Network: connects to 127.0.0.1 fail, but Unix sockets on the filesystem (e.g. PostgreSQL's in
    /run/postgresql) remain reachable. With `network=True` (setup steps) the host's network
    namespace is kept instead. Filesystem: NOT isolated; the command can write wherever the
    bot's user can. Processes: a fresh /proc, so host processes (and their environments) are
    invisible, and the whole namespace dies with the command.
    """

    name = "unshare"

    def __init__(
        self,
        workspace_root: Path,
        *,
        limits: ResourceLimits | None = None,
        output_limit: int = 64_000,
        shell: str | None = None,
        unshare_path: str | None = None,
    ) -> None:
        super().__init__(workspace_root, limits=limits, output_limit=output_limit, shell=shell)
        self.unshare_path = unshare_path or shutil.which("unshare") or "unshare"

    def _argv(
        self, command: str, cwd: Path, env: Mapping[str, str], *, network: bool
    ) -> list[str]:
        namespaces = ["--user", "--map-root-user", *([] if network else ["--net"]), "--pid"]
        return [
            self.unshare_path,
            *namespaces,
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--",
            self.shell,
            "-c",
            command,
        ]


class SubprocessSandbox(_LocalSandbox):
    """Last resort: a plain child process with rlimits, a wall-clock kill, a scrubbed environment.

    It provides: no inherited environment variables (the command sees BASE_ENV plus what the caller
    passes); CPU, address-space, file-size, open-file and (for non-root users) process-count limits;
    a wall-clock limit that kills the process group and every descendant.

    It does NOT provide: network isolation (the command can reach anything the bot can), filesystem
    isolation (it can write wherever the bot's user can), or process isolation (a same-user command
    can read /proc/<bot pid>/environ, and a process that double-forks into a new session before the
    deadline escapes the kill). Use it only when neither bubblewrap nor unshare works. Having no
    network isolation to lift, it runs setup steps (`network=True`) exactly like other commands.
    """

    name = "subprocess"

    def _argv(
        self, command: str, cwd: Path, env: Mapping[str, str], *, network: bool
    ) -> list[str]:
        return [self.shell, "-c", command]


def resolver_binds(files: Sequence[Path], *, masked: Path) -> list[str]:
    """bwrap arguments that show each of `files` where it really lives when that is under
    `masked` (an empty tmpfs): /etc/resolv.conf is often a symlink into /run (systemd-resolved),
    and without it a networked setup step could connect but not resolve a name. Only the files
    are bound, never their directories, so no socket beside them becomes reachable."""
    binds: list[str] = []
    for path in files:
        target = path.resolve()
        if target.is_relative_to(masked) and target.is_file():
            binds += ["--ro-bind", str(target), str(target)]
    return binds


def _toolchain_roots() -> list[Path]:
    return list(dict.fromkeys(Path(p).resolve() for p in (sys.prefix, sys.base_prefix)))
