"""What a command in the sandbox can reach of the host: its own clone, and nothing of the bot's.

Every test builds the sandbox the way the worker does (`bot.sandboxing.sandbox_provider` from
settings) and runs real commands in real bubblewrap. The bot's state is planted with secret
markers, and the data dir is placed where a mount would show it (worst case: an operator's
toolchain directory that contains it), so "hidden" means hidden by the sandbox, not by luck.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import pytest

from agents.sandbox import SandboxProvider, SandboxUnavailable
from agents.sandbox.base import Sandbox
from bot.sandboxing import sandbox_options, sandbox_provider
from bot.settings import Settings, load_settings

pytestmark = pytest.mark.usefixtures("clean_env")
# Read before clean_env removes every FACTORY_* variable; .ci/docker-engine builds this image.
DOCKER_TEST_IMAGE = os.environ.get("FACTORY_SANDBOX_TEST_IMAGE", "python:3.11-slim")


def _secret(label: str) -> str:
    return f"{label}-{secrets.token_hex(8)}"


class BotState:
    """A data dir with everything a worker keeps there, each file holding its own marker."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.markers: dict[str, str] = {}
        self.mine = self.data / "workspaces" / "ws-mine" / "repo"
        self.mine.mkdir(parents=True)
        self.mine_git = self.mine.parent / "git"
        self.mine_git.mkdir()
        (self.mine_git / "HEAD").write_text("ref: refs/heads/main\n")
        for relative in (
            "workspaces/ws-other/repo/private.py",
            "workspaces/ws-other/git/config",
            "deliveries/2026/12/06/abc.json",
            "factory.db",
            "factory.db-wal",
            "factory.db-shm",
            "knowledge/lexical.sqlite3",
            "chroma/chroma.sqlite3",
            ".env",
        ):
            self.plant(self.data / relative, relative)
        self.key = root / "keys" / "app.pem"
        self.plant(self.key, "private key")

    def plant(self, path: Path, label: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        marker = _secret(label.replace("/", "_"))
        path.write_text(f"{marker}\n")
        # World-readable on purpose: only the sandbox's mounts may keep these out of reach.
        path.chmod(0o644)
        for parent in (path.parent, *path.parent.parents):
            if parent == self.root.parent:
                break
            parent.chmod(0o755)
        self.markers[label] = marker

    def settings(self, backend: str = "bwrap", **overrides: object) -> Settings:
        return load_settings(
            _env_file=None,
            data_dir=self.data,
            private_key_path=self.key,
            sandbox=backend,
            sandbox_image=DOCKER_TEST_IMAGE,
            # The worst case: a directory shown to commands contains all of the bot's state.
            sandbox_toolchains=[self.root],
            **overrides,
        )


@pytest.fixture
def state(tmp_path: Path) -> BotState:
    root = Path("/var/tmp") / f"factory-state-{secrets.token_hex(4)}"
    root.mkdir(mode=0o755)
    try:
        yield BotState(root)  # type: ignore[misc]
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def _sandbox(settings: Settings, state: BotState) -> Sandbox:
    provider = sandbox_provider(settings)
    if provider.choice().name != settings.sandbox:
        pytest.skip(
            f"the {settings.sandbox} sandbox does not run here: {provider.choice().problem}"
        )
    return provider.for_workspace(state.mine, state.mine_git)


# Docker runs where CI's .ci/docker-engine started an engine and built its test image.
BACKENDS = [
    pytest.param("bwrap", id="bwrap"),
    pytest.param("docker", id="docker"),
]


READ_EVERYTHING = (
    "ls -laR {root} 2>&1; "
    "find / -xdev \\( -name '*.pem' -o -name '*.db*' -o -name '.env' -o -name '*.sqlite3' \\) "
    "-print -exec cat {{}} \\; 2>/dev/null; "
    "cat {root}/data/workspaces/ws-other/repo/private.py {root}/data/factory.db-wal "
    "{root}/data/deliveries/2026/12/06/abc.json {root}/keys/app.pem 2>&1; true"
)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_command_sees_its_own_clone_and_none_of_the_bots_state(
    state: BotState, backend: str
) -> None:
    sandbox = _sandbox(state.settings(backend), state)
    result = await sandbox.run(
        READ_EVERYTHING.format(root=state.root) + "; echo mine > mine.txt",
        cwd=state.mine,
        timeout_s=60,
    )
    seen = result.stdout + result.stderr
    leaked = [label for label, marker in state.markers.items() if marker in seen]
    assert leaked == [], f"the sandbox read {leaked}"
    assert (state.mine / "mine.txt").read_text() == "mine\n"
    listing = await sandbox.run(
        f"ls -A {state.data}/workspaces {state.data}", cwd=state.mine, timeout_s=30
    )
    # Only the way to its own clone exists: no other workspace, archive, database or index.
    assert sorted(listing.stdout.split()) == sorted(
        [f"{state.data}:", "workspaces", f"{state.data}/workspaces:", "ws-mine"]
    ), listing


async def test_an_operators_hidden_paths_add_to_the_defaults(
    state: BotState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: production wiring passed its own list, which replaced the home defaults, so
    ~/.npmrc, ~/.gitconfig and ~/.config were readable."""
    home = state.root / "home"
    for name in (".npmrc", ".gitconfig", ".config/gh/hosts.yml", ".ssh/id_ed25519"):
        state.plant(home / name, f"home {name}")
    monkeypatch.setenv("HOME", str(home))
    extra = state.root / "operator-secret.txt"
    state.plant(extra, "operator secret")
    sandbox = _sandbox(state.settings(sandbox_hidden_paths=[extra]), state)
    result = await sandbox.run(
        f"cat {home}/.npmrc {home}/.gitconfig {home}/.config/gh/hosts.yml "
        f"{home}/.ssh/id_ed25519 {extra}; ls -la {home}/.config {home}/.ssh; true",
        cwd=state.mine,
        timeout_s=30,
    )
    seen = result.stdout + result.stderr
    assert [label for label, marker in state.markers.items() if marker in seen] == []


async def test_with_the_default_settings_nothing_outside_the_os_is_mounted(
    state: BotState,
) -> None:
    settings = load_settings(_env_file=None, data_dir=state.data, sandbox="bwrap")
    sandbox = _sandbox(settings, state)
    top = await sandbox.run("ls -A /", cwd=state.mine, timeout_s=30)
    os_dirs = {
        "bin",
        "dev",
        "etc",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "proc",
        "run",
        "sbin",
        "tmp",
        "usr",
    }
    # Beyond the OS: only the way to the bot's Python and to this clone.
    python_and_clone = {Path(p).parts[1] for p in (sys.prefix, sys.base_prefix, state.mine)}
    assert set(top.stdout.split()) <= os_dirs | python_and_clone, top.stdout
    path = await sandbox.run(
        f"ls -A {state.root} {state.data}; for d in /home /opt /srv /mnt /media /boot; do "
        "test -e $d && echo PRESENT $d; done; true",
        cwd=state.mine,
        timeout_s=30,
    )
    assert "PRESENT" not in path.stdout
    assert sorted(path.stdout.split()) == sorted(
        [f"{state.root}:", "data", f"{state.data}:", "workspaces"]
    ), path.stdout


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_command_never_runs_as_root(state: BotState, backend: str) -> None:
    """A root-owned 0600 file beside a toolchain stays closed, and `id` is not 0."""
    sandbox = _sandbox(state.settings(backend), state)
    closed = state.root / "root-only.txt"
    state.plant(closed, "root only")
    closed.chmod(0o600)
    result = await sandbox.run(f"id -u; cat {closed}; true", cwd=state.mine, timeout_s=30)
    uid = int(result.stdout.split()[0])
    assert uid != 0
    if os.geteuid() == 0:
        assert uid >= 200_000
    assert state.markers["root only"] not in result.stdout


async def test_the_process_limit_holds_even_when_the_bot_is_root(state: BotState) -> None:
    """Before: as root, 400 processes started under a limit of 256 (RLIMIT_NPROC is not
    enforced for uid 0)."""
    settings = state.settings(sandbox_pids=64)
    sandbox = _sandbox(settings, state)
    fork_many = (
        f'{sys.executable} -c "import os, time\n'
        "n = 0\n"
        "for _ in range(400):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError as exc:\n"
        "        print('refused after', n, exc); break\n"
        "    if pid == 0:\n"
        "        time.sleep(5); os._exit(0)\n"
        "    n += 1\n"
        "print('started', n)\n"
        'raise SystemExit(0 if n >= 400 else 1)"'
    )
    result = await sandbox.run(fork_many, cwd=state.mine, timeout_s=60)
    started = int(result.stdout.rsplit("started", 1)[1].split()[0])
    assert started < 64, result.stdout
    assert result.limit is not None and "process limit (64 processes)" in result.limit
    assert "[sandbox]" in result.stderr


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_command_writing_past_the_disk_quota_is_stopped_and_told_why(
    state: BotState, backend: str
) -> None:
    """Before: one command wrote 2.1 GB to the disk."""
    settings = state.settings(backend, sandbox_disk_mb=400, sandbox_command_disk_mb=150)
    sandbox = _sandbox(settings, state)
    # Many files, each under the per-file limit: only the quota watch can stop this.
    result = await sandbox.run(
        "python3 -c \"\nfor i in range(100):\n    open(f'f{i}.bin', 'wb').write(bytes(20000000))\n"
        "print('WROTE_ALL')\"",
        cwd=state.mine,
        timeout_s=120,
    )
    assert "WROTE_ALL" not in result.stdout
    assert result.limit is not None and "disk quota exceeded" in result.limit
    assert "150 MB one command may write" in result.stderr
    written = sum(f.stat().st_size for f in state.mine.glob("f*.bin"))
    # Stopped near the quota: within a few files' worth of one poll interval.
    assert 150 * 2**20 < written < 400 * 2**20, written


async def test_one_file_cannot_pass_the_command_quota(state: BotState) -> None:
    settings = state.settings(sandbox_command_disk_mb=32)
    sandbox = _sandbox(settings, state)
    result = await sandbox.run(
        "head -c 100000000 /dev/zero > big.bin; echo rc=$?", cwd=state.mine, timeout_s=60
    )
    assert (state.mine / "big.bin").stat().st_size <= 32 * 2**20
    assert "rc=0" not in result.stdout


async def test_a_memory_hog_is_stopped_with_a_clear_message(state: BotState) -> None:
    sandbox = _sandbox(state.settings(sandbox_memory_mb=256), state)
    result = await sandbox.run(
        f"{sys.executable} -c 'bytearray(1024 * 1024 * 1024); print(\"ALLOCATED\")'",
        cwd=state.mine,
        timeout_s=60,
    )
    assert "ALLOCATED" not in result.stdout
    assert result.limit == "the command ran out of the sandbox's memory limit (256 MB)"


def test_without_an_isolating_sandbox_commands_are_refused_and_doctor_says_why(
    state: BotState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Before: with neither Docker nor bubblewrap working, commands silently ran as plain
    subprocesses, with the network and the host's files reachable."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no bwrap, no setpriv: bubblewrap cannot run
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    settings = load_settings(_env_file=None, data_dir=state.data)  # sandbox: auto
    provider = SandboxProvider(sandbox_options(settings))
    with pytest.raises(SandboxUnavailable) as refused:
        provider.for_workspace(state.mine, state.mine_git)
    message = str(refused.value)
    assert "no isolating sandbox works here" in message
    assert "docker: no Docker engine answers" in message and "bubblewrap:" in message
    assert "FACTORY_SANDBOX=none-unsafe" in message

    from bot.doctor import _sandbox as doctor_sandbox

    check = doctor_sandbox(settings)
    assert check.status.name == "PROBLEM" and "no isolating sandbox works here" in check.detail


def test_none_unsafe_must_be_chosen_explicitly(state: BotState) -> None:
    settings = load_settings(_env_file=None, data_dir=state.data, sandbox="none-unsafe")
    sandbox = sandbox_provider(settings).for_workspace(state.mine, state.mine_git)
    assert sandbox.name == "none-unsafe"


async def test_a_command_cannot_plant_code_the_bot_or_its_host_runs_later(
    state: BotState, tmp_path: Path
) -> None:
    """Python packaging and the shell give a repository many places to leave code for later:
    a .pth or sitecustomize in the bot's own site-packages (run at the bot's next start), a
    shell profile, pip's config, git's hook templates. None of them is writable."""
    import site

    targets = [
        Path(site.getsitepackages()[0]) / "zz_factory_probe.pth",
        Path(sys.prefix) / "lib" / "sitecustomize.py",
        Path("/etc/profile.d/zz_factory_probe.sh"),
        Path("/usr/share/git-core/templates/hooks/post-checkout"),
        Path.home() / ".bashrc-factory-probe",
        state.root / "toolchain-probe.txt",
    ]
    sandbox = _sandbox(state.settings(), state)
    payload = "; ".join(f"echo 'import os' > {t}" for t in targets)
    result = await sandbox.run(payload + "; true", cwd=state.mine, timeout_s=30)
    assert [t for t in targets if t.exists()] == []
    assert "Read-only file system" in result.stderr or "No such file" in result.stderr


async def test_a_repositorys_package_cache_is_its_own(state: BotState) -> None:
    """What one repository's setup steps leave in the package cache reaches its later runs (the
    point of the cache) and never another repository's commands."""
    settings = state.settings()
    provider = sandbox_provider(settings)
    if provider.choice().name != "bwrap":
        pytest.skip(f"bubblewrap does not run here: {provider.choice().problem}")
    other = state.data / "workspaces" / "ws-later" / "repo"
    other.mkdir(parents=True)
    first = provider.for_workspace(state.mine, state.mine_git, "1/octo-org/demo")
    plant = await first.run(
        'mkdir -p "$PIP_CACHE_DIR" && echo wheel-bytes > "$PIP_CACHE_DIR/numpy.whl"',
        cwd=state.mine,
        timeout_s=30,
        network=True,
    )
    assert plant.ok, plant
    read = 'cat "$PIP_CACHE_DIR/numpy.whl"; ls -A /var/cache/factory'
    later = await provider.for_workspace(other, None, "1/octo-org/demo").run(
        read, cwd=other, timeout_s=30
    )
    assert "wheel-bytes" in later.stdout
    stranger = await provider.for_workspace(other, None, "2/evil-org/attacker").run(
        read, cwd=other, timeout_s=30
    )
    assert "wheel-bytes" not in stranger.stdout and stranger.stdout.strip() == ""
