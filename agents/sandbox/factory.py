"""Pick the strongest sandbox that works on this host."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from agents.sandbox.base import Sandbox, SandboxUnavailable
from agents.sandbox.docker_backend import (
    DEFAULT_DOCKER_IMAGE,
    DEFAULT_SETUP_NETWORK,
    DockerSandbox,
)
from agents.sandbox.local import BubblewrapSandbox, SubprocessSandbox, UnshareSandbox
from agents.sandbox.process import ResourceLimits

if TYPE_CHECKING:
    from docker import DockerClient

logger = logging.getLogger(__name__)

_DOCKER_CONNECT_TIMEOUT_S = 5


def make_sandbox(
    backend: Literal["auto", "docker", "local"],
    *,
    workspace_root: Path,
    docker_image: str = DEFAULT_DOCKER_IMAGE,
    memory_mb: int = 2048,
    cpus: float = 1.0,
    pids: int = 256,
    output_limit: int = 64_000,
    file_size_mb: int = 1024,
    hidden_paths: Sequence[Path] | None = None,
    docker_setup_network: str = DEFAULT_SETUP_NETWORK,
    docker_client_factory: Callable[[], DockerClient] | None = None,
) -> Sandbox:
    """Build the sandbox for `backend`; "auto" means Docker when an engine answers, else local.

    "local" (and "auto" without Docker) self-tests bubblewrap, then `unshare`, then falls back to a
    plain subprocess, and uses the first that runs a command. Local backends enforce memory, CPU
    time, file size and process count with rlimits; they cannot apply a CPU *share*, so `cpus` only
    affects Docker. `docker_setup_network` is the Docker network mode setup steps run on. The
    choice is logged once, here.
    """
    workspace_root = workspace_root.resolve()
    if backend not in ("auto", "docker", "local"):
        raise ValueError(f"unknown sandbox backend {backend!r}")
    sandbox: Sandbox | None = None
    if backend in ("auto", "docker"):
        try:
            client = _docker_client(docker_image, docker_client_factory)
        except SandboxUnavailable as exc:
            if backend == "docker":
                raise
            logger.info("docker sandbox not used: %s", exc)
        else:
            sandbox = DockerSandbox(
                client,
                workspace_root,
                image=docker_image,
                memory_mb=memory_mb,
                cpus=cpus,
                pids=pids,
                output_limit=output_limit,
                setup_network=docker_setup_network,
            )
    if sandbox is None:
        limits = ResourceLimits(memory_mb=memory_mb, file_size_mb=file_size_mb, nproc=pids)
        sandbox = _strongest_local(workspace_root, limits, output_limit, hidden_paths)
    logger.info("sandbox backend: %s (workspace %s)", sandbox.name, workspace_root)
    return sandbox


def _docker_client(image: str, factory: Callable[[], DockerClient] | None) -> DockerClient:
    # Imported here so hosts that never use Docker don't pay for the SDK's import.
    import docker
    from docker.errors import DockerException, ImageNotFound

    try:
        client = factory() if factory else docker.from_env(timeout=_DOCKER_CONNECT_TIMEOUT_S)
        client.ping()
    except DockerException as exc:
        raise SandboxUnavailable(f"no Docker engine answers ({exc})") from exc
    try:
        client.images.get(image)
    except ImageNotFound as exc:
        # No registry may be reachable, so a missing image is a configuration problem, not a pull.
        raise SandboxUnavailable(f"Docker image {image!r} is not present on the engine") from exc
    except DockerException as exc:
        raise SandboxUnavailable(f"Docker engine failed to inspect {image!r} ({exc})") from exc
    return client


def _strongest_local(
    workspace_root: Path,
    limits: ResourceLimits,
    output_limit: int,
    hidden_paths: Sequence[Path] | None,
) -> Sandbox:
    candidates = (
        BubblewrapSandbox(
            workspace_root, limits=limits, output_limit=output_limit, hidden_paths=hidden_paths
        ),
        UnshareSandbox(workspace_root, limits=limits, output_limit=output_limit),
    )
    for candidate in candidates:
        if candidate.probe():
            return candidate
        logger.warning(
            "sandbox backend %s failed its self-test; trying a weaker one", candidate.name
        )
    logger.warning("sandbox: no namespace isolation available; commands can reach the network")
    return SubprocessSandbox(workspace_root, limits=limits, output_limit=output_limit)
