"""Local sandbox backends: bubblewrap, and an explicitly unsafe plain subprocess for development."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path

from agents.sandbox.base import (
    BASE_ENV,
    CommandResult,
    SandboxUnavailable,
    command_env,
    confined_cwd,
)
from agents.sandbox.egress_gateway import EgressAllowList, egress_for
from agents.sandbox.identity import UidRange, bot_is_root, hand_over
from agents.sandbox.mounts import (
    Mount,
    merged_hidden_paths,
    system_mounts,
    visible_hidden_paths,
)
from agents.sandbox.package_cache import CACHE_ENV, CACHE_MOUNT, PackageCache
from agents.sandbox.process import ResourceLimits, run_argv, with_limit
from agents.sandbox.quota import DiskQuota, QuotaWatch

_PROBE_TIMEOUT_S = 10.0
_MB = 1024 * 1024


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
        quota: DiskQuota | None = None,
        cache: PackageCache | None = None,
    ) -> None:
        self.workspace_root = workspace_root.resolve()
        self.limits = limits or ResourceLimits()
        self.output_limit = output_limit
        self.shell = shell or _default_shell()
        self.quota = quota or DiskQuota()
        self.cache = cache

    async def run(
        self,
        command: str,
        *,
        cwd: Path,
        timeout_s: float = 300,
        env: Mapping[str, str] | None = None,
        network: bool = False,
    ) -> CommandResult:
        return await self._run(command, cwd=cwd, timeout_s=timeout_s, env=env, network=network)

    async def _run(
        self,
        command: str,
        *,
        cwd: Path,
        timeout_s: float,
        env: Mapping[str, str] | None,
        network: bool,
        binds: Sequence[str] = (),
    ) -> CommandResult:
        workdir = confined_cwd(self.workspace_root, cwd)
        child_env = command_env({**self._cache_env(), **(env or {})})
        if env is None or "PATH" not in env:
            # Validation gates say `python -m pytest`: on the host that means the Python the
            # bot runs on (its directory first), as in a developer's activated virtualenv.
            child_env["PATH"] = f"{Path(sys.executable).parent}:{child_env['PATH']}"
        await self._prepare()
        return await run_argv(
            self._argv(command, workdir, child_env, network=network, binds=binds),
            command=command,
            cwd=workdir,
            env=self._process_env(child_env),
            timeout_s=timeout_s,
            limits=self.limits,
            output_limit=self.output_limit,
            quota=QuotaWatch(
                self.workspace_root,
                self.quota,
                cache=self.cache.path if self.cache else None,
                cache_mb=self.cache.limit_mb if self.cache else 0,
            ),
        )

    def _cache_env(self) -> dict[str, str]:
        """Package managers' cache variables, when a cache is mounted (the caller's env wins)."""
        return dict(CACHE_ENV) if self.cache is not None else {}

    def probe(self) -> bool:
        """True when this backend can run a trivial command here: the factory's self-test."""
        return self.probe_problem() is None

    def probe_problem(self) -> str | None:
        """None when a trivial command runs here, else what went wrong (for doctor and logs)."""
        missing = self._missing()
        if missing is not None:
            return missing
        argv = self._argv("true", self.workspace_root, dict(BASE_ENV), network=False, binds=())
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
        except (OSError, subprocess.SubprocessError) as exc:
            return f"{argv[0]} could not run ({exc})"
        if completed.returncode != 0:
            said = completed.stderr.decode(errors="replace").strip().splitlines()
            return f"{argv[0]} failed its self-test: {said[-1] if said else completed.returncode}"
        return None

    async def _prepare(self) -> None:
        """Runs before every command (the bubblewrap backend hands the files over here)."""

    def _missing(self) -> str | None:
        """What this backend needs and the host lacks, in words; None when nothing is missing."""
        return None

    @abstractmethod
    def _argv(
        self,
        command: str,
        cwd: Path,
        env: Mapping[str, str],
        *,
        network: bool,
        binds: Sequence[str],
    ) -> list[str]: ...

    def _process_env(self, env: Mapping[str, str]) -> dict[str, str]:
        return dict(env)


class BubblewrapSandbox(_LocalSandbox):
    """bubblewrap: an empty root with the OS read-only, the work tree writable, nothing else.

    What a command sees: `/usr` and `/etc` and the OS's top-level links, the bot's Python and
    the operator's `toolchains`, all read-only (see agents.sandbox.mounts); its own work tree,
    writable; the workspace's git directory (`git_dir`), read-only, so `git diff` works but
    nothing can be planted where the bot's own git reads; a private `/tmp` of `tmp_mb`; empty
    `/run`. Other workspaces, the bot's data dir, homes and `/opt` are not there at all, and the
    hidden paths (credential stores, the bot's state: defaults always included) are covered in
    case a visible tree contains them.

    Every namespace is unshared (network, pid, ipc, uts, cgroup), so connects to 127.0.0.1 fail
    and the command cannot see or signal host processes; the environment is cleared. The command
    never runs as root: when the bot is root, bubblewrap sets up the mounts and the command drops
    to the workspace's own unprivileged uid (setpriv: no capabilities, no-new-privs), its files
    handed to that uid first; otherwise bubblewrap runs as the bot's user in a user namespace
    with every capability dropped. So the process limit holds and root-only files stay closed.

    A setup step (`network=True`) still gets no network namespace of its own: it reaches package
    registries only through the egress proxy (agents.sandbox.egress), which admits the listed
    hosts and never a loopback, private or link-local address.
    """

    name = "bwrap"

    def __init__(
        self,
        workspace_root: Path,
        *,
        git_dir: Path | None = None,
        limits: ResourceLimits | None = None,
        output_limit: int = 64_000,
        shell: str | None = None,
        hidden_paths: Sequence[Path] | None = None,
        toolchains: Sequence[Path] = (),
        tmp_mb: int = 1024,
        quota: DiskQuota | None = None,
        cache: PackageCache | None = None,
        uids: UidRange | None = None,
        uid_key: str | None = None,
        egress: EgressAllowList | None = None,
        bwrap_path: str | None = None,
        setpriv_path: str | None = None,
    ) -> None:
        super().__init__(
            workspace_root,
            limits=limits,
            output_limit=output_limit,
            shell=shell,
            quota=quota,
            cache=cache,
        )
        self.git_dir = git_dir.resolve() if git_dir is not None else None
        self.bwrap_path = bwrap_path or shutil.which("bwrap")
        self.setpriv_path = setpriv_path or shutil.which("setpriv")
        self.hidden_paths = merged_hidden_paths(hidden_paths)
        self.mounts: list[Mount] = system_mounts(toolchains)
        self.tmp_mb = tmp_mb
        self.egress = egress or EgressAllowList()
        # When the bot is root, the uid the command drops to; None: the bot's own (non-root) uid.
        # Keyed by `uid_key` (the repository) when its workspaces share a package cache.
        uid_range = uids or UidRange()
        self.uid = (
            (
                uid_range.for_key(uid_key)
                if uid_key
                else uid_range.for_workspace(self.workspace_root)
            )
            if bot_is_root()
            else None
        )

    async def run(
        self,
        command: str,
        *,
        cwd: Path,
        timeout_s: float = 300,
        env: Mapping[str, str] | None = None,
        network: bool = False,
    ) -> CommandResult:
        if not network:
            return await self._run(command, cwd=cwd, timeout_s=timeout_s, env=env, network=False)
        async with AsyncExitStack() as stack:
            socket_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="egress-")))
            gateway = await stack.enter_async_context(
                egress_for(self.egress, socket_dir, uid=self.uid)
            )
            result = await self._run(
                gateway.wrap(command, python=sys.executable),
                cwd=cwd,
                timeout_s=timeout_s,
                env={**(env or {}), **gateway.environment()},
                network=True,
                binds=gateway.binds(),
            )
            refused = gateway.refusals()
        if refused:
            note = "the egress proxy refused: " + "; ".join(refused[:10])
            result = replace(result, stderr=with_limit(result.stderr, note))
        # Reported under the command the caller gave, not the wrapper that ran it.
        return replace(result, command=command)

    async def _prepare(self) -> None:
        missing = self._missing()
        if missing is not None:
            raise SandboxUnavailable(missing)
        if self.uid is not None:
            await asyncio.to_thread(hand_over, self.workspace_root, self.uid)
            if self.cache is not None:
                await asyncio.to_thread(hand_over, self.cache.path, self.uid)

    def _missing(self) -> str | None:
        if self.bwrap_path is None:
            return "bubblewrap is not installed (no `bwrap` on PATH)"
        if self.uid is not None and self.setpriv_path is None:
            return "`setpriv` (util-linux) is needed to drop root for sandboxed commands"
        return None

    def _argv(
        self,
        command: str,
        cwd: Path,
        env: Mapping[str, str],
        *,
        network: bool,
        binds: Sequence[str],
    ) -> list[str]:
        argv = [str(self.bwrap_path)]
        for mount in self.mounts:
            if mount.symlink_target is not None:
                argv += ["--symlink", mount.symlink_target, str(mount.path)]
            else:
                argv += [*_parents(mount.path), "--ro-bind", str(mount.path), str(mount.path)]
        argv += ["--dev", "/dev", "--proc", "/proc"]
        argv += ["--size", str(self.tmp_mb * _MB), "--perms", "1777", "--tmpfs", "/tmp"]
        argv += ["--perms", "0755", "--tmpfs", "/run"]
        for hidden in visible_hidden_paths(self.hidden_paths, self.mounts):
            if hidden.is_dir():
                argv += ["--tmpfs", str(hidden)]
            else:
                argv += ["--ro-bind", "/dev/null", str(hidden)]
        argv += binds
        # Last, so they show through /tmp or a hidden directory when they lie inside one.
        argv += [*_parents(self.workspace_root), "--bind", *[str(self.workspace_root)] * 2]
        if self.git_dir is not None:
            argv += [*_parents(self.git_dir), "--ro-bind", *[str(self.git_dir)] * 2]
        if self.cache is not None:
            argv += [*_parents(CACHE_MOUNT), "--bind", str(self.cache.path), str(CACHE_MOUNT)]
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
        argv += ["--unshare-cgroup-try", "--die-with-parent", "--new-session"]
        argv += ["--hostname", "sandbox", "--clearenv"]
        for key, value in env.items():
            argv += ["--setenv", key, value]
        argv += ["--chdir", str(cwd), "--"]
        if self.uid is None:
            # Not root: bubblewrap needs a user namespace to mount, and keeps no capability.
            argv[1:1] = ["--unshare-user", "--cap-drop", "ALL"]
        else:
            argv += [
                str(self.setpriv_path),
                f"--reuid={self.uid}",
                f"--regid={self.uid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ]
        return [*argv, self.shell, "-c", command]

    def _process_env(self, env: Mapping[str, str]) -> dict[str, str]:
        # bwrap itself gets nothing worth stealing; the command's variables go in via --setenv.
        return {"PATH": BASE_ENV["PATH"]}


class UnsafeSubprocessSandbox(_LocalSandbox):
    """`none-unsafe`: a plain child process, for development on a machine that has no sandbox.

    It keeps the scrubbed environment, the rlimits, the disk quota and the wall-clock kill, and
    isolates NOTHING else: the command can reach the network and every loopback service, read
    and write whatever the bot's user can (its keys and database included), and see the bot's
    processes. Only an operator's explicit `FACTORY_SANDBOX=none-unsafe` selects it.
    """

    name = "none-unsafe"

    def _argv(
        self,
        command: str,
        cwd: Path,
        env: Mapping[str, str],
        *,
        network: bool,
        binds: Sequence[str],
    ) -> list[str]:
        return [self.shell, "-c", command]


def _parents(path: Path) -> list[str]:
    """bwrap arguments creating `path`'s parent directories traversable (0755) in the new root.

    Without them bubblewrap copies no modes, and a parent such as /root would be created 0700,
    closing the way to a toolchain below it for the unprivileged command."""
    return ["--perms", "0755", "--dir", str(path.parent)] if path.parent != Path("/") else []
