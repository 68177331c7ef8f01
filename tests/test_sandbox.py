"""The sandbox, run for real: network, time, environment, filesystem and output limits."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agents.sandbox import (
    DEFAULT_DOCKER_IMAGE,
    BubblewrapSandbox,
    DockerSandbox,
    ResourceLimits,
    Sandbox,
    SandboxUnavailable,
    UnsafeSubprocessSandbox,
    make_sandbox,
)
from agents.sandbox.egress_gateway import EgressAllowList

REDIS = ("127.0.0.1", 6379)
POSTGRES_SOCKET = Path("/run/postgresql/.s.PGSQL.5432")
CONNECT_REDIS = (
    f"{sys.executable} -c \"import socket; socket.create_connection(('127.0.0.1', 6379), 2); "
    "print('CONNECTED')\""
)

LocalFactory = Callable[[Path], Sandbox]


def _bwrap(root: Path) -> Sandbox:
    sandbox = BubblewrapSandbox(root)
    if not sandbox.probe():
        pytest.skip("bubblewrap does not run on this host")
    return sandbox


def _unsafe(root: Path) -> Sandbox:
    return UnsafeSubprocessSandbox(root)


ISOLATING = [pytest.param(_bwrap, id="bwrap")]
ALL_LOCAL = [*ISOLATING, pytest.param(_unsafe, id="none-unsafe")]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    root.mkdir()
    return root


def _process_with(marker: str) -> list[int]:
    """Live processes whose command line contains marker (zombies have an empty cmdline)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(name))
    return found


async def _wait_gone(marker: str, within_s: float = 1.0) -> list[int]:
    deadline = time.monotonic() + within_s
    while (left := _process_with(marker)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left


def _unique_sleep_seconds() -> str:
    # A duration nobody else uses, so the process table can be searched for exactly our sleeps.
    return f"30.{secrets.randbelow(10**9):09d}"


def _redis_answers_outside() -> None:
    with socket.create_connection(REDIS, timeout=2):
        pass


@pytest.mark.parametrize("factory", ISOLATING)
async def test_isolating_backends_refuse_network(factory: LocalFactory, workspace: Path) -> None:
    _redis_answers_outside()
    result = await factory(workspace).run(CONNECT_REDIS, cwd=workspace, timeout_s=10)
    assert result.exit_code != 0
    assert "CONNECTED" not in result.stdout
    assert "Connection refused" in result.stderr or "unreachable" in result.stderr


async def test_setup_steps_reach_allowed_hosts_through_the_proxy_and_nothing_else(
    workspace: Path,
) -> None:
    """A setup step fetches from an allowed (here: an operator-listed private) server through
    the egress proxy; the host's Redis stays out of reach, and later commands get nothing."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nHELLO")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    fetch = (
        f'{sys.executable} -c "import urllib.request; '
        f"print(urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=5).read().decode())\""
    )
    try:
        sandbox = BubblewrapSandbox(
            workspace, egress=EgressAllowList(allow=(), allow_private=(f"127.0.0.1:{port}",))
        )
        if not sandbox.probe():
            pytest.skip("bubblewrap does not run on this host")
        setup = await sandbox.run(
            f"{fetch}; {CONNECT_REDIS}", cwd=workspace, timeout_s=30, network=True
        )
        assert "HELLO" in setup.stdout, setup
        assert "CONNECTED" not in setup.stdout
        after = await sandbox.run(fetch, cwd=workspace, timeout_s=30)
        assert after.exit_code != 0 and "HELLO" not in after.stdout
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("factory", ALL_LOCAL)
async def test_setup_steps_get_the_same_scrubbed_environment(
    factory: LocalFactory, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    webhook_secret, api_key = secrets.token_hex(16), "sk-ant-" + secrets.token_hex(16)
    monkeypatch.setenv("FACTORY_WEBHOOK_SECRET", webhook_secret)
    monkeypatch.setenv("ANTHROPIC_API_KEY", api_key)
    result = await factory(workspace).run("env", cwd=workspace, network=True)
    assert result.ok
    assert webhook_secret not in result.stdout and api_key not in result.stdout
    assert "FACTORY_WEBHOOK_SECRET" not in result.stdout
    names = {line.partition("=")[0] for line in result.stdout.splitlines()}
    assert {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"} <= names
    assert "ANTHROPIC_API_KEY" not in names


async def test_bwrap_setup_steps_keep_the_filesystem_confined(
    workspace: Path, tmp_path: Path, fake_home: Path
) -> None:
    (fake_home / ".ssh").mkdir()
    (fake_home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY hunter3\n")
    outside = tmp_path / "outside.txt"
    sandbox = BubblewrapSandbox(workspace, hidden_paths=[fake_home / ".ssh"])
    if not sandbox.probe():
        pytest.skip("bubblewrap does not run on this host")
    result = await sandbox.run(
        f"echo inside > made.txt; touch /usr/agent-factory-probe; echo x > {outside}; "
        f"cat {fake_home}/.ssh/id_ed25519; ls /run",
        cwd=workspace,
        network=True,
    )
    assert (workspace / "made.txt").read_text() == "inside\n"
    assert not Path("/usr/agent-factory-probe").exists() and not outside.exists()
    assert "Read-only file system" in result.stderr
    assert "hunter3" not in result.stdout
    if POSTGRES_SOCKET.exists():
        assert "postgresql" not in result.stdout.split()


@pytest.mark.parametrize("factory", ALL_LOCAL)
async def test_setup_steps_time_out_like_other_commands(
    factory: LocalFactory, workspace: Path
) -> None:
    marker = _unique_sleep_seconds()
    started = time.monotonic()
    result = await factory(workspace).run(
        f"sleep {marker} & sleep {marker}", cwd=workspace, timeout_s=1, network=True
    )
    assert result.timed_out and result.exit_code == 137
    assert time.monotonic() - started < 2.5
    assert await _wait_gone(marker) == []


async def test_none_unsafe_does_not_isolate_network(workspace: Path) -> None:
    # Documented limitation of the development-only backend; if this fails, update its docstring.
    _redis_answers_outside()
    result = await UnsafeSubprocessSandbox(workspace).run(
        CONNECT_REDIS, cwd=workspace, timeout_s=10
    )
    assert result.ok and "CONNECTED" in result.stdout


async def test_bwrap_hides_unix_sockets_under_run(workspace: Path) -> None:
    if not POSTGRES_SOCKET.exists():
        pytest.skip("no PostgreSQL socket on this host to try")
    probe = (
        f'{sys.executable} -c "import socket; s = socket.socket(socket.AF_UNIX); '
        f"s.connect('{POSTGRES_SOCKET}'); print('CONNECTED')\""
    )
    result = await _bwrap(workspace).run(probe, cwd=workspace, timeout_s=10)
    assert result.exit_code != 0 and "CONNECTED" not in result.stdout


@pytest.mark.parametrize("factory", ALL_LOCAL)
async def test_timeout_kills_command_and_its_children(
    factory: LocalFactory, workspace: Path
) -> None:
    first, second = _unique_sleep_seconds(), _unique_sleep_seconds()
    command = f"sleep {first} & (sleep {second}; true) & sleep {first}"
    started = time.monotonic()
    result = await factory(workspace).run(command, cwd=workspace, timeout_s=1)
    assert result.timed_out and not result.ok
    assert result.exit_code == 137
    assert time.monotonic() - started < 2.5
    assert await _wait_gone(first) == []
    assert await _wait_gone(second) == []


@pytest.mark.parametrize("factory", ALL_LOCAL)
async def test_background_children_do_not_outlive_a_finished_command(
    factory: LocalFactory, workspace: Path
) -> None:
    marker = _unique_sleep_seconds()
    started = time.monotonic()
    result = await factory(workspace).run(f"sleep {marker} & echo started", cwd=workspace)
    assert result.ok and result.stdout == "started\n"
    # The background sleep holds stdout open; the run must not wait for it to end.
    assert time.monotonic() - started < 2.5
    assert await _wait_gone(marker) == []


@pytest.mark.parametrize("factory", ALL_LOCAL)
async def test_cancelled_run_leaves_no_process(factory: LocalFactory, workspace: Path) -> None:
    marker = _unique_sleep_seconds()
    task = asyncio.create_task(factory(workspace).run(f"sleep {marker}", cwd=workspace))
    deadline = time.monotonic() + 2
    while not _process_with(marker) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert _process_with(marker), "the command never started"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _wait_gone(marker) == []


@pytest.mark.parametrize("factory", ALL_LOCAL)
async def test_command_cannot_see_bot_secrets(
    factory: LocalFactory, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    webhook_secret, api_key = secrets.token_hex(16), "sk-ant-" + secrets.token_hex(16)
    monkeypatch.setenv("FACTORY_WEBHOOK_SECRET", webhook_secret)
    monkeypatch.setenv("ANTHROPIC_API_KEY", api_key)
    result = await factory(workspace).run("env", cwd=workspace, env={"GIVEN": "by-caller"})
    assert result.ok
    assert "FACTORY_WEBHOOK_SECRET" not in result.stdout and webhook_secret not in result.stdout
    assert "ANTHROPIC_API_KEY" not in result.stdout and api_key not in result.stdout
    assert "GIVEN=by-caller" in result.stdout.splitlines()


@pytest.mark.parametrize("factory", ISOLATING)
async def test_isolating_backends_hide_the_bots_process_environment(
    factory: LocalFactory, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # os.environ changes do not reach /proc/self/environ, so hand the secret to a real process the
    # way the bot's own process would hold it.
    secret = secrets.token_hex(16)
    holder = await asyncio.create_subprocess_exec(
        "sleep", _unique_sleep_seconds(), env={"FACTORY_WEBHOOK_SECRET": secret}
    )
    try:
        assert secret.encode() in Path(f"/proc/{holder.pid}/environ").read_bytes()
        result = await factory(workspace).run(
            "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'", cwd=workspace
        )
        assert secret not in result.stdout
    finally:
        holder.kill()
        await holder.wait()


async def test_bwrap_root_is_read_only_and_only_the_workspace_is_writable(
    workspace: Path, tmp_path: Path
) -> None:
    sandbox = _bwrap(workspace)
    outside = tmp_path / "outside.txt"
    result = await sandbox.run(
        f"echo inside > made.txt; touch /usr/agent-factory-probe; echo x > {outside}; "
        "echo private > /tmp/agent-factory-probe; cat /tmp/agent-factory-probe",
        cwd=workspace,
    )
    assert (workspace / "made.txt").read_text() == "inside\n"
    assert not Path("/usr/agent-factory-probe").exists()
    assert not outside.exists()
    assert "Read-only file system" in result.stderr
    # /tmp inside is a private tmpfs: writable, and gone afterwards.
    assert result.stdout.strip() == "private"
    assert not Path("/tmp/agent-factory-probe").exists()


@pytest.fixture
def fake_home() -> Iterator[Path]:
    # Not under /tmp: the sandbox replaces /tmp, which would hide it for the wrong reason.
    home = Path(tempfile.mkdtemp(prefix="agent-factory-home-", dir="/var/tmp"))
    yield home
    shutil.rmtree(home)


async def test_bwrap_hides_credential_files_and_directories(
    workspace: Path, fake_home: Path
) -> None:
    home = fake_home
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY hunter1\n")
    (home / ".netrc").write_text("machine github.com password hunter2\n")
    (home / "toolchain.txt").write_text("visible\n")
    # The home is shown as a toolchain directory (readable by others, as a toolchain must be for
    # an unprivileged command); the credential stores in it stay hidden.
    home.chmod(0o755)
    sandbox = BubblewrapSandbox(
        workspace, hidden_paths=[home / ".ssh", home / ".netrc"], toolchains=[home]
    )
    result = await sandbox.run(
        f"ls -A {home}/.ssh; cat {home}/.netrc {home}/toolchain.txt", cwd=workspace
    )
    assert "hunter1" not in result.stdout and "id_ed25519" not in result.stdout
    assert "hunter2" not in result.stdout
    assert result.stdout == "visible\n"


@pytest.mark.parametrize("factory", ALL_LOCAL)
async def test_exit_code_and_streams_are_reported_separately(
    factory: LocalFactory, workspace: Path
) -> None:
    result = await factory(workspace).run("echo out; echo err >&2; exit 3", cwd=workspace)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.ok and not result.timed_out and not result.truncated
    assert result.command == "echo out; echo err >&2; exit 3"
    assert result.duration_s >= 0


@pytest.mark.parametrize("backend", [BubblewrapSandbox, UnsafeSubprocessSandbox])
async def test_long_output_keeps_head_and_tail(
    backend: type[BubblewrapSandbox | UnsafeSubprocessSandbox], workspace: Path
) -> None:
    sandbox = backend(workspace, output_limit=1_000)
    result = await sandbox.run(
        "echo START; head -c 200000 /dev/zero | tr '\\0' x; echo; echo END", cwd=workspace
    )
    assert result.ok and result.truncated
    assert result.stdout.startswith("START\n") and result.stdout.endswith("END\n")
    assert "bytes of output omitted" in result.stdout
    assert len(result.stdout) < 1_100


@pytest.mark.parametrize(
    ("backend", "use_prlimit"),
    [
        pytest.param(BubblewrapSandbox, True, id="bwrap-prlimit"),
        pytest.param(UnsafeSubprocessSandbox, True, id="subprocess-prlimit"),
        pytest.param(UnsafeSubprocessSandbox, False, id="subprocess-preexec"),
    ],
)
async def test_memory_limit_stops_a_large_allocation(
    backend: type[BubblewrapSandbox | UnsafeSubprocessSandbox], use_prlimit: bool, workspace: Path
) -> None:
    limits = ResourceLimits(memory_mb=256)
    if not use_prlimit:
        limits = ResourceLimits(memory_mb=256, prlimit_path=None)
    elif limits.prlimit_path is None:
        pytest.skip("prlimit is not installed")
    sandbox = backend(workspace, limits=limits)
    result = await sandbox.run(
        f"{sys.executable} -c 'bytearray(1024 * 1024 * 1024); print(\"ALLOCATED\")'",
        cwd=workspace,
    )
    assert result.exit_code != 0 and "ALLOCATED" not in result.stdout
    assert "MemoryError" in result.stderr


async def test_file_size_limit_stops_a_runaway_write(workspace: Path) -> None:
    sandbox = BubblewrapSandbox(workspace, limits=ResourceLimits(file_size_mb=1))
    result = await sandbox.run("head -c 3000000 /dev/zero > big.bin", cwd=workspace)
    assert result.exit_code != 0
    assert (workspace / "big.bin").stat().st_size <= 1024 * 1024


async def test_cwd_outside_the_workspace_is_rejected(workspace: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside the sandbox workspace"):
        await UnsafeSubprocessSandbox(workspace).run("true", cwd=tmp_path)


async def test_make_sandbox_bwrap_logs_its_choice(
    workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _bwrap(workspace)
    with caplog.at_level(logging.INFO, logger="agents.sandbox.factory"):
        sandbox = make_sandbox("bwrap", workspace_root=workspace, memory_mb=512, pids=64)
    assert sandbox.name == "bwrap"
    assert [r.getMessage() for r in caplog.records if "sandbox backend:" in r.getMessage()] == [
        "sandbox backend: bwrap"
    ]
    result = await sandbox.run(CONNECT_REDIS, cwd=workspace, timeout_s=10)
    assert result.exit_code != 0


def _docker_answers() -> bool:
    import docker
    from docker.errors import DockerException

    try:
        docker.from_env(timeout=2).ping()
    except DockerException:
        return False
    return True


def test_make_sandbox_auto_falls_back_to_bwrap_without_docker(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whether or not an engine runs here, this one does not answer.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{workspace}/no-docker.sock")
    assert make_sandbox("auto", workspace_root=workspace).name == "bwrap"
    with pytest.raises(SandboxUnavailable, match="no Docker engine answers"):
        make_sandbox("docker", workspace_root=workspace)


@pytest.fixture
def docker_sandbox(workspace: Path) -> DockerSandbox:
    if not _docker_answers():
        pytest.skip("no Docker engine answers")
    image = os.environ.get("FACTORY_SANDBOX_TEST_IMAGE", DEFAULT_DOCKER_IMAGE)
    try:
        sandbox = make_sandbox("docker", workspace_root=workspace, docker_image=image)
    except SandboxUnavailable as exc:
        pytest.skip(f"an engine answers but cannot run the sandbox: {exc}")
    assert isinstance(sandbox, DockerSandbox)
    return sandbox


def _sandbox_containers(sandbox: DockerSandbox) -> list[object]:
    return list(
        sandbox.client.containers.list(all=True, filters={"label": "agent-factory.sandbox"})
    )


async def test_docker_refuses_network(docker_sandbox: DockerSandbox, workspace: Path) -> None:
    _redis_answers_outside()
    # Images differ in what they ship; use whichever client exists, and insist one does.
    probe = (
        'if command -v python3 >/dev/null; then python3 -c "import socket; '
        "socket.create_connection(('127.0.0.1', 6379), 2)\"; "
        "elif command -v nc >/dev/null; then nc -w 2 127.0.0.1 6379 </dev/null; "
        "else echo NO_CLIENT; exit 0; fi && echo CONNECTED"
    )
    result = await docker_sandbox.run(probe, cwd=workspace, timeout_s=30)
    assert "NO_CLIENT" not in result.stdout
    assert result.exit_code != 0 and "CONNECTED" not in result.stdout


async def test_docker_times_out_and_removes_the_container(
    docker_sandbox: DockerSandbox, workspace: Path
) -> None:
    started = time.monotonic()
    result = await docker_sandbox.run("sleep 30", cwd=workspace, timeout_s=1)
    assert result.timed_out and result.exit_code == 137
    assert time.monotonic() - started < 10
    assert _sandbox_containers(docker_sandbox) == []


async def test_docker_hides_bot_secrets_and_only_the_workspace_is_writable(
    docker_sandbox: DockerSandbox, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACTORY_WEBHOOK_SECRET", "docker-secret-value")
    result = await docker_sandbox.run(
        "env; echo hi > made.txt; touch /probe", cwd=workspace, timeout_s=30
    )
    assert "docker-secret-value" not in result.stdout
    assert "FACTORY_WEBHOOK_SECRET" not in result.stdout
    assert (workspace / "made.txt").read_text() == "hi\n"
    assert "Read-only file system" in result.stderr


async def test_docker_caps_processes_and_memory(
    docker_sandbox: DockerSandbox, workspace: Path
) -> None:
    tight = DockerSandbox(
        docker_sandbox.client, workspace, image=docker_sandbox.image, pids=32, memory_mb=64
    )
    forks = await tight.run(
        "i=0; while [ $i -lt 100 ]; do sleep 5 & i=$((i+1)); done; echo STARTED_ALL",
        cwd=workspace,
        timeout_s=30,
    )
    assert "STARTED_ALL" not in forks.stdout and "fork" in forks.stderr.lower()
    hog = await tight.run(
        "python3 -c \"b = bytearray(512 * 1024 * 1024); print('ALLOCATED')\"",
        cwd=workspace,
        timeout_s=30,
    )
    assert hog.exit_code != 0 and "ALLOCATED" not in hog.stdout
    assert _sandbox_containers(tight) == []


_CONNECT_REDIS_IN_IMAGE = (
    'if command -v python3 >/dev/null; then python3 -c "import socket; '
    "socket.create_connection(('127.0.0.1', 6379), 2)\"; "
    "elif command -v nc >/dev/null; then nc -w 2 127.0.0.1 6379 </dev/null; "
    "else echo NO_CLIENT; exit 0; fi && echo CONNECTED"
)


async def test_docker_setup_steps_use_the_setup_network_and_stay_scrubbed(
    docker_sandbox: DockerSandbox, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "host" exists on every Linux engine, even one started with --bridge=none, and puts the
    # container where the host's Redis is reachable on 127.0.0.1.
    _redis_answers_outside()
    monkeypatch.setenv("FACTORY_WEBHOOK_SECRET", "docker-setup-secret-value")
    sandbox = DockerSandbox(
        docker_sandbox.client, workspace, image=docker_sandbox.image, setup_network="host"
    )
    setup = await sandbox.run(
        f"env; echo hi > made.txt; touch /probe; {_CONNECT_REDIS_IN_IMAGE}",
        cwd=workspace,
        timeout_s=30,
        network=True,
    )
    assert "NO_CLIENT" not in setup.stdout
    assert setup.ok and "CONNECTED" in setup.stdout, setup.stderr
    assert "docker-setup-secret-value" not in setup.stdout
    assert "FACTORY_WEBHOOK_SECRET" not in setup.stdout
    assert (workspace / "made.txt").read_text() == "hi\n"
    assert "Read-only file system" in setup.stderr
    offline = await sandbox.run(_CONNECT_REDIS_IN_IMAGE, cwd=workspace, timeout_s=30)
    assert offline.exit_code != 0 and "CONNECTED" not in offline.stdout
    assert _sandbox_containers(sandbox) == []


async def test_docker_setup_steps_default_to_the_egress_proxy(
    docker_sandbox: DockerSandbox, workspace: Path
) -> None:
    """By default a setup step's container has no network either: it reaches an allowed server
    through the bot's egress proxy (here an operator-listed private one), not the host's Redis."""
    assert docker_sandbox.setup_network == "egress"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nHELLO")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sandbox = DockerSandbox(
        docker_sandbox.client,
        workspace,
        image=docker_sandbox.image,
        egress=EgressAllowList(allow=(), allow_private=(f"127.0.0.1:{port}",)),
    )
    fetch = (
        'python3 -c "import urllib.request; '
        f"print(urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=5).read().decode())\""
    )
    try:
        setup = await sandbox.run(
            f"ls /sys/class/net; {fetch}; {_CONNECT_REDIS_IN_IMAGE}",
            cwd=workspace,
            timeout_s=60,
            network=True,
        )
    finally:
        server.close()
        await server.wait_closed()
    assert "HELLO" in setup.stdout, setup
    assert setup.stdout.split()[0] == "lo" and "CONNECTED" not in setup.stdout
    assert _sandbox_containers(sandbox) == []


async def test_docker_refusing_the_setup_network_says_so(
    docker_sandbox: DockerSandbox, workspace: Path
) -> None:
    sandbox = DockerSandbox(
        docker_sandbox.client,
        workspace,
        image=docker_sandbox.image,
        setup_network="agent-factory-no-such-network",
    )
    with pytest.raises(SandboxUnavailable, match="'agent-factory-no-such-network'"):
        await sandbox.run("true", cwd=workspace, timeout_s=30, network=True)
    assert (await sandbox.run("true", cwd=workspace, timeout_s=30)).ok
    assert _sandbox_containers(sandbox) == []


def test_docker_setup_network_cannot_be_none(workspace: Path) -> None:
    with pytest.raises(ValueError, match="other than 'none'"):
        DockerSandbox(object(), workspace, setup_network="none")  # type: ignore[arg-type]
