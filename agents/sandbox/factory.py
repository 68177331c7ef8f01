"""Choose the sandbox once per process, and fail closed when none isolates.

`auto` takes Docker when an engine answers with the image present, else bubblewrap when it
passes its self-test. When neither works, agent commands do not run: every request for a
sandbox raises SandboxUnavailable with what was tried and why it failed, which ends the step
with that message on the issue. Running commands without isolation takes an explicit
`none-unsafe`, meant for development only.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from agents.sandbox.base import Sandbox, SandboxUnavailable
from agents.sandbox.docker_backend import (
    DEFAULT_DOCKER_IMAGE,
    DEFAULT_SETUP_NETWORK,
    DockerSandbox,
)
from agents.sandbox.egress_gateway import EgressAllowList
from agents.sandbox.identity import UidRange
from agents.sandbox.local import BubblewrapSandbox, UnsafeSubprocessSandbox
from agents.sandbox.package_cache import PackageCache
from agents.sandbox.process import ResourceLimits
from agents.sandbox.quota import DiskQuota

if TYPE_CHECKING:
    from docker import DockerClient

logger = logging.getLogger(__name__)

Backend = Literal["auto", "docker", "bwrap", "none-unsafe"]
BACKENDS: tuple[str, ...] = get_args(Backend)
# Accepted for configurations written before the choice was explicit.
_ALIASES = {"local": "bwrap"}
_DOCKER_CONNECT_TIMEOUT_S = 5

UNAVAILABLE_HINT = (
    "Agent commands do not run without isolation. Install bubblewrap (Debian/Ubuntu: "
    "`apt install bubblewrap`) or start a Docker engine with the sandbox image, then restart the "
    "worker; for development only, FACTORY_SANDBOX=none-unsafe runs commands unisolated."
)


@dataclass(frozen=True)
class SandboxOptions:
    """Everything that shapes a sandbox, from the operator's settings."""

    backend: str = "auto"
    docker_image: str = DEFAULT_DOCKER_IMAGE
    memory_mb: int = 2048
    cpus: float = 1.0
    pids: int = 256
    output_limit: int = 64_000
    file_size_mb: int = 1024
    tmp_mb: int = 1024
    quota: DiskQuota = field(default_factory=DiskQuota)
    hidden_paths: Sequence[Path] = ()
    toolchains: Sequence[Path] = ()
    uids: UidRange = field(default_factory=UidRange)
    egress: EgressAllowList = field(default_factory=EgressAllowList)
    # Where per-repository package caches live; None: no cache is mounted.
    cache_root: Path | None = None
    cache_mb: int = 4096
    docker_setup_network: str = DEFAULT_SETUP_NETWORK

    def __post_init__(self) -> None:
        backend = _ALIASES.get(self.backend, self.backend)
        if backend not in BACKENDS:
            raise ValueError(
                f"unknown sandbox backend {self.backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        object.__setattr__(self, "backend", backend)

    @property
    def limits(self) -> ResourceLimits:
        # One command may not write more than its disk quota into a single file either.
        file_mb = min(self.file_size_mb, self.quota.command_mb)
        return ResourceLimits(memory_mb=self.memory_mb, file_size_mb=file_mb, nproc=self.pids)


@dataclass(frozen=True)
class Choice:
    """The backend this process uses, or why none can be used."""

    name: str | None
    problem: str | None = None
    # Why stronger or preferred backends were passed over (shown by doctor).
    passed_over: tuple[str, ...] = ()


class SandboxProvider:
    """Builds a sandbox per workspace; the backend is chosen (and probed) once, on first use."""

    def __init__(
        self,
        options: SandboxOptions,
        *,
        docker_client_factory: Callable[[], DockerClient] | None = None,
    ) -> None:
        self.options = options
        self._docker_client_factory = docker_client_factory
        self._docker: DockerClient | None = None
        self._choice: Choice | None = None

    def choice(self) -> Choice:
        if self._choice is None:
            self._choice = self._choose()
            if self._choice.name is None:
                logger.error("sandbox: none available: %s", self._choice.problem)
            else:
                logger.info(
                    "sandbox backend: %s%s",
                    self._choice.name,
                    f" ({'; '.join(self._choice.passed_over)})" if self._choice.passed_over else "",
                )
        return self._choice

    def for_workspace(
        self, work_tree: Path, git_dir: Path | None = None, repository: str | None = None
    ) -> Sandbox:
        """The sandbox for one work tree (its git dir shown read-only), or SandboxUnavailable.

        `repository` ("<installation id>/<owner>/<name>") gives the sandbox that repository's
        package cache, and makes every workspace of the repository run as the same uid.
        """
        choice = self.choice()
        if choice.name is None:
            raise SandboxUnavailable(choice.problem or "no sandbox is available")
        cache = None
        if repository is not None and self.options.cache_root is not None:
            cache = PackageCache.for_repository(
                self.options.cache_root, repository, self.options.cache_mb
            )
        return self._build(choice.name, work_tree, git_dir, cache, repository)

    def _build(
        self,
        name: str,
        work_tree: Path,
        git_dir: Path | None,
        cache: PackageCache | None,
        uid_key: str | None,
    ) -> Sandbox:
        o = self.options
        if name == "docker":
            assert self._docker is not None
            return DockerSandbox(
                self._docker,
                work_tree,
                git_dir=git_dir,
                image=o.docker_image,
                memory_mb=o.memory_mb,
                cpus=o.cpus,
                pids=o.pids,
                output_limit=o.output_limit,
                tmp_size_mb=o.tmp_mb,
                quota=o.quota,
                cache=cache,
                uids=o.uids,
                uid_key=uid_key,
                setup_network=o.docker_setup_network,
                egress=o.egress,
            )
        if name == "bwrap":
            return BubblewrapSandbox(
                work_tree,
                git_dir=git_dir,
                limits=o.limits,
                output_limit=o.output_limit,
                hidden_paths=o.hidden_paths,
                toolchains=o.toolchains,
                tmp_mb=o.tmp_mb,
                quota=o.quota,
                cache=cache,
                uids=o.uids,
                uid_key=uid_key,
                egress=o.egress,
            )
        logger.warning(
            "sandbox none-unsafe: running an agent command WITHOUT isolation in %s", work_tree
        )
        return UnsafeSubprocessSandbox(
            work_tree, limits=o.limits, output_limit=o.output_limit, quota=o.quota, cache=cache
        )

    def _choose(self) -> Choice:
        backend = self.options.backend
        if backend == "none-unsafe":
            return Choice("none-unsafe")
        passed_over: list[str] = []
        if backend in ("auto", "docker"):
            try:
                self._docker = _docker_client(
                    self.options.docker_image, self._docker_client_factory
                )
            except SandboxUnavailable as exc:
                if backend == "docker":
                    image = self.options.docker_image
                    return Choice(
                        None,
                        f"FACTORY_SANDBOX=docker, but {exc}. Start an engine, or load the image "
                        f"with `docker pull {image}` (or `docker load`), or set "
                        "FACTORY_SANDBOX=auto.",
                    )
                passed_over.append(f"docker: {exc}")
            else:
                return Choice("docker", passed_over=tuple(passed_over))
        problem = _bwrap_problem()
        if problem is None:
            return Choice("bwrap", passed_over=tuple(passed_over))
        tried = [*passed_over, f"bubblewrap: {problem}"]
        return Choice(
            None,
            "no isolating sandbox works here (" + "; ".join(tried) + "). " + UNAVAILABLE_HINT,
            tuple(tried),
        )


def make_sandbox(
    backend: str,
    *,
    workspace_root: Path,
    git_dir: Path | None = None,
    docker_client_factory: Callable[[], DockerClient] | None = None,
    **options: object,
) -> Sandbox:
    """One sandbox for one work tree, choosing the backend on the spot (tests, doctor, the CLI)."""
    provider = SandboxProvider(
        SandboxOptions(backend=backend, **options),  # type: ignore[arg-type]
        docker_client_factory=docker_client_factory,
    )
    return provider.for_workspace(workspace_root.resolve(), git_dir)


def _bwrap_problem() -> str | None:
    with tempfile.TemporaryDirectory(prefix="factory-probe-") as scratch:
        return BubblewrapSandbox(Path(scratch)).probe_problem()


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
