"""The Docker backend: one throwaway container per command, no network (setup steps aside),
bounded resources."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from docker.errors import APIError, NotFound

from agents.sandbox.base import CommandResult, SandboxUnavailable, command_env, confined_cwd
from agents.sandbox.capture import BoundedOutput

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

DEFAULT_DOCKER_IMAGE = "python:3.11-slim"
# Setup steps (`network=True`) get the engine's default network; everything else gets none.
DEFAULT_SETUP_NETWORK = "bridge"
_KILLED_EXIT_CODE = 137


class DockerSandbox:
    """Runs each command in a fresh container from `image` with the workspace bind-mounted.

    The container has no network (`network_mode="none"`), a read-only root filesystem with a tmpfs
    /tmp, no capabilities, no-new-privileges, memory/CPU/PID limits, and only the environment the
    caller passes. The workspace is mounted at its host path so paths mean the same inside and out.
    It runs as the workspace owner's uid:gid, so files it writes belong to the bot; when the
    workspace is owned by root it runs as the image's user (root, but without capabilities).

    A setup step (`network=True`) runs the same way, except on `setup_network` (a Docker
    network mode such as "bridge" or "host", or a network's name). If the engine refuses it,
    run raises SandboxUnavailable saying so. An engine started with `--bridge=none` accepts
    "bridge" but attaches nothing, so setup steps there run offline: give it another network.
    """

    name = "docker"

    def __init__(
        self,
        client: DockerClient,
        workspace_root: Path,
        *,
        image: str = DEFAULT_DOCKER_IMAGE,
        memory_mb: int = 2048,
        cpus: float = 1.0,
        pids: int = 256,
        output_limit: int = 64_000,
        tmp_size_mb: int = 512,
        setup_network: str = DEFAULT_SETUP_NETWORK,
    ) -> None:
        if setup_network in ("", "none"):
            raise ValueError("setup_network must be a network mode other than 'none'")
        self.client = client
        self.workspace_root = workspace_root.resolve()
        self.image = image
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.pids = pids
        self.output_limit = output_limit
        self.tmp_size_mb = tmp_size_mb
        self.setup_network = setup_network

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
        network_mode = self.setup_network if network else "none"
        started = time.monotonic()
        with _network_refusal(network_mode, setup=network):
            container = await asyncio.to_thread(
                self._create, command, workdir, child_env, network_mode
            )
        try:
            # An engine checks the network only here: an unknown one fails the start with 404.
            with _network_refusal(network_mode, setup=network):
                await asyncio.to_thread(container.start)
            exit_code, timed_out = await asyncio.to_thread(self._wait, container, timeout_s)
            stdout, stderr = await asyncio.to_thread(self._collect_logs, container)
        finally:
            # Also on cancellation: the container must not outlive the agent that started it.
            await asyncio.shield(asyncio.to_thread(self._dispose, container))
        return CommandResult(
            command=command,
            exit_code=exit_code,
            stdout=stdout.text(),
            stderr=stderr.text(),
            duration_s=time.monotonic() - started,
            timed_out=timed_out,
            truncated=stdout.truncated or stderr.truncated,
        )

    def _create(
        self, command: str, workdir: Path, env: Mapping[str, str], network_mode: str
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
            "volumes": {str(self.workspace_root): {"bind": str(self.workspace_root), "mode": "rw"}},
            "labels": {"agent-factory.sandbox": "1"},
            "detach": True,
        }
        owner = os.stat(self.workspace_root)
        if owner.st_uid != 0:
            options["user"] = f"{owner.st_uid}:{owner.st_gid}"
        return self.client.containers.create(self.image, **options)

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
