"""The Docker backend: one throwaway container per command, no network (setup steps aside),
bounded resources."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from docker.errors import APIError, NotFound

from agents.sandbox.base import CommandResult, SandboxUnavailable, command_env, confined_cwd
from agents.sandbox.capture import BoundedOutput
from agents.sandbox.egress_gateway import EgressAllowList, egress_for
from agents.sandbox.identity import UidRange, bot_is_root, hand_over
from agents.sandbox.package_cache import CACHE_ENV, CACHE_MOUNT, PackageCache
from agents.sandbox.process import OUT_OF_PROCESSES as _OUT_OF_PROCESSES
from agents.sandbox.process import with_limit
from agents.sandbox.quota import DiskQuota, QuotaWatch

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

DEFAULT_DOCKER_IMAGE = "python:3.11-slim"
# Setup steps (`network=True`) reach the registries through the bot's egress proxy, like every
# other command without a network of their own; any other value names a Docker network instead.
EGRESS = "egress"
DEFAULT_SETUP_NETWORK = EGRESS
_KILLED_EXIT_CODE = 137


class DockerSandbox:
    """Runs each command in a fresh container from `image` with the workspace bind-mounted.

    The container has no network (`network_mode="none"`), a read-only root filesystem with a tmpfs
    /tmp, no capabilities, no-new-privileges, memory/CPU/PID limits (a pids cgroup, which holds
    for every uid), a disk quota on the work tree (agents.sandbox.quota), and only the
    environment the caller passes. The work tree is mounted at its host path so paths mean the
    same inside and out, and the workspace's git directory beside it read-only. It never runs
    as root: as the bot's own uid when the bot is not root, else as the workspace's own
    unprivileged uid (agents.sandbox.identity), the work tree handed to it first.

    A setup step (`network=True`) runs the same way. With `setup_network="egress"` (the
    default) it still has no network: the image's `python3` runs the egress forwarder and the
    step reaches the allowed registries through the bot's proxy (agents.sandbox.egress), never a
    loopback, private or metadata address. Any other value is a Docker network mode or name the
    operator chose instead ("bridge", "host", a network of theirs), which filters nothing; if the
    engine refuses it, run raises SandboxUnavailable saying so.
    """

    name = "docker"

    def __init__(
        self,
        client: DockerClient,
        workspace_root: Path,
        *,
        git_dir: Path | None = None,
        image: str = DEFAULT_DOCKER_IMAGE,
        memory_mb: int = 2048,
        cpus: float = 1.0,
        pids: int = 256,
        output_limit: int = 64_000,
        tmp_size_mb: int = 512,
        quota: DiskQuota | None = None,
        cache: PackageCache | None = None,
        uids: UidRange | None = None,
        uid_key: str | None = None,
        setup_network: str = DEFAULT_SETUP_NETWORK,
        egress: EgressAllowList | None = None,
        egress_python: str = "python3",
    ) -> None:
        if setup_network in ("", "none"):
            raise ValueError("setup_network must be a network mode other than 'none'")
        self.client = client
        self.workspace_root = workspace_root.resolve()
        self.git_dir = git_dir.resolve() if git_dir is not None else None
        self.image = image
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.pids = pids
        self.output_limit = output_limit
        self.tmp_size_mb = tmp_size_mb
        self.quota = quota or DiskQuota()
        self.cache = cache
        self.setup_network = setup_network
        self.egress = egress or EgressAllowList()
        self.egress_python = egress_python
        root = bot_is_root()
        uid_range = uids or UidRange()
        keyed = uid_range.for_key(uid_key) if uid_key else None
        self.uid = (keyed or uid_range.for_workspace(self.workspace_root)) if root else os.getuid()
        self.gid = self.uid if root else os.getgid()

    async def run(
        self,
        command: str,
        *,
        cwd: Path,
        timeout_s: float = 300,
        env: Mapping[str, str] | None = None,
        network: bool = False,
    ) -> CommandResult:
        if not (network and self.setup_network == EGRESS):
            network_mode = self.setup_network if network else "none"
            return await self._run(command, cwd, timeout_s, env, network_mode, setup=network)
        async with contextlib.AsyncExitStack() as stack:
            socket_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="egress-")))
            root_uid = self.uid if self.uid != os.getuid() else None
            gateway = await stack.enter_async_context(
                egress_for(self.egress, socket_dir, uid=root_uid)
            )
            result = await self._run(
                gateway.wrap(command, python=self.egress_python),
                cwd,
                timeout_s,
                {**(env or {}), **gateway.environment()},
                "none",
                setup=True,
                volumes={str(socket_dir): {"bind": str(socket_dir), "mode": "ro"}},
            )
            refused = gateway.refusals()
        if refused:
            note = "the egress proxy refused: " + "; ".join(refused[:10])
            result = replace(result, stderr=with_limit(result.stderr, note))
        return replace(result, command=command)

    async def _run(
        self,
        command: str,
        cwd: Path,
        timeout_s: float,
        env: Mapping[str, str] | None,
        network_mode: str,
        *,
        setup: bool,
        volumes: Mapping[str, dict[str, str]] | None = None,
    ) -> CommandResult:
        network = setup
        workdir = confined_cwd(self.workspace_root, cwd)
        child_env = command_env({**(CACHE_ENV if self.cache else {}), **(env or {})})
        if self.uid != os.getuid():
            await asyncio.to_thread(hand_over, self.workspace_root, self.uid)
            if self.cache is not None:
                await asyncio.to_thread(hand_over, self.cache.path, self.uid)
        quota = QuotaWatch(
            self.workspace_root,
            self.quota,
            cache=self.cache.path if self.cache else None,
            cache_mb=self.cache.limit_mb if self.cache else 0,
        )
        await quota.baseline()
        started = time.monotonic()
        with _network_refusal(network_mode, setup=network):
            container = await asyncio.to_thread(
                self._create, command, workdir, child_env, network_mode, volumes or {}
            )
        try:
            # An engine checks the network only here: an unknown one fails the start with 404.
            with _network_refusal(network_mode, setup=network):
                await asyncio.to_thread(container.start)
            exit_code, timed_out = await self._wait_within_quota(container, timeout_s, quota)
            stdout, stderr = await asyncio.to_thread(self._collect_logs, container)
            oom_killed = await asyncio.to_thread(_oom_killed, container)
        finally:
            # Also on cancellation: the container must not outlive the agent that started it.
            await asyncio.shield(asyncio.to_thread(self._dispose, container))
        limit = quota.exceeded or self._limit_hit(exit_code, stderr.text(), oom_killed)
        return CommandResult(
            command=command,
            exit_code=exit_code,
            stdout=stdout.text(),
            stderr=with_limit(stderr.text(), limit),
            duration_s=time.monotonic() - started,
            timed_out=timed_out,
            truncated=stdout.truncated or stderr.truncated,
            limit=limit,
        )

    async def _wait_within_quota(
        self, container: Container, timeout_s: float, quota: QuotaWatch
    ) -> tuple[int, bool]:
        waiting = asyncio.ensure_future(asyncio.to_thread(self._wait, container, timeout_s))
        watching = asyncio.ensure_future(quota.run())
        try:
            await asyncio.wait({waiting, watching}, return_when=asyncio.FIRST_COMPLETED)
            if watching.done() and not waiting.done():
                await asyncio.to_thread(container.kill)
        finally:
            watching.cancel()
        return await waiting

    def _limit_hit(self, exit_code: int, stderr: str, oom_killed: bool) -> str | None:
        if oom_killed or (exit_code != 0 and "MemoryError" in stderr):
            return f"the command ran out of the sandbox's memory limit ({self.memory_mb:,} MB)"
        if exit_code != 0 and any(sign in stderr for sign in _OUT_OF_PROCESSES):
            return f"the command reached the sandbox's process limit ({self.pids} processes)"
        return None

    def _create(
        self,
        command: str,
        workdir: Path,
        env: Mapping[str, str],
        network_mode: str,
        volumes: Mapping[str, dict[str, str]],
    ) -> Container:
        options: dict[str, Any] = {
            "command": ["sh", "-c", command],
            "working_dir": str(workdir),
            "environment": dict(env),
            "network_mode": network_mode,
            "mem_limit": f"{self.memory_mb}m",
            "memswap_limit": f"{self.memory_mb}m",
            "nano_cpus": int(self.cpus * 1_000_000_000),
            "pids_limit": self.pids,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,size={self.tmp_size_mb}m,mode=1777"},
            "volumes": {**self._volumes(), **volumes},
            "labels": {"agent-factory.sandbox": "1"},
            "user": f"{self.uid}:{self.gid}",
            "detach": True,
        }
        return self.client.containers.create(self.image, **options)

    def _volumes(self) -> dict[str, dict[str, str]]:
        work_tree = str(self.workspace_root)
        volumes = {work_tree: {"bind": work_tree, "mode": "rw"}}
        if self.git_dir is not None:
            volumes[str(self.git_dir)] = {"bind": str(self.git_dir), "mode": "ro"}
        if self.cache is not None:
            volumes[str(self.cache.path)] = {"bind": str(CACHE_MOUNT), "mode": "rw"}
        return volumes

    @staticmethod
    def _wait(container: Container, timeout_s: float) -> tuple[int, bool]:
        try:
            status = container.wait(timeout=timeout_s)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            container.kill()
            return _KILLED_EXIT_CODE, True
        return int(status.get("StatusCode", -1)), False

    def _collect_logs(self, container: Container) -> tuple[BoundedOutput, BoundedOutput]:
        stdout, stderr = BoundedOutput(self.output_limit), BoundedOutput(self.output_limit)
        for chunk in container.logs(stdout=True, stderr=False, stream=True):
            stdout.feed(chunk)
        for chunk in container.logs(stdout=False, stderr=True, stream=True):
            stderr.feed(chunk)
        return stdout, stderr

    @staticmethod
    def _dispose(container: Container) -> None:
        with contextlib.suppress(NotFound):
            container.remove(force=True)


def _oom_killed(container: Container) -> bool:
    with contextlib.suppress(NotFound, APIError):
        container.reload()
        return bool(container.attrs.get("State", {}).get("OOMKilled"))
    return False


@contextlib.contextmanager
def _network_refusal(network_mode: str, *, setup: bool) -> Iterator[None]:
    """For a setup step, an engine error becomes SandboxUnavailable naming the network mode."""
    try:
        yield
    except APIError as exc:
        if not setup:
            raise
        raise SandboxUnavailable(
            f"the Docker engine cannot run a setup step on network {network_mode!r}: "
            f"{exc.explanation or exc}"
        ) from exc
