"""`factory up` for real: a subprocess with no environment at all, in its own network namespace
(so nothing answers at the default Redis address and the embedded Redis must start), answering
/healthz and /readyz, then stopping cleanly on SIGINT and on SIGTERM with no Redis left behind.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 60


def _namespaces_work() -> str | None:
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(
        ["unshare", "-rn", "sh", "-c", "ip link set lo up"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot create a network namespace here: {probe.stderr.strip()}"
    return None


_no_namespaces = _namespaces_work()
needs_namespaces = pytest.mark.skipif(_no_namespaces is not None, reason=_no_namespaces or "")


def _factory_command() -> list[str]:
    script = Path(sys.executable).with_name("factory")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from bot.cli import main; main()"]


def _read_banner(process: subprocess.Popen[bytes]) -> str:
    assert process.stdout is not None
    # Raw reads on the descriptor: a buffered readline would hide data from select().
    fd = process.stdout.fileno()
    banner = b""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while b"Data dir:" not in banner or not banner.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or process.poll() is not None:
            raise AssertionError(f"factory up did not start; stdout so far:\n{banner.decode()}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            banner += os.read(fd, 65536)
    return banner.decode()


def _get_inside(pid: int, url: str) -> tuple[int, str]:
    code = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n    r = urllib.request.urlopen(sys.argv[1], timeout=5)\n"
        "except urllib.error.HTTPError as e:\n    r = e\n"
        "print(r.status); print(r.read().decode())"
    )
    result = subprocess.run(
        [
            "nsenter",
            "-t",
            str(pid),
            "-U",
            "-n",
            "--preserve-credentials",
            sys.executable,
            "-c",
            code,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.split("\n", 1)
    return int(status), body.strip()


@needs_namespaces
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_up_with_no_environment_serves_and_stops_cleanly(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    env["PYTHONPATH"] = str(ROOT)  # Only for the fallback command; the script ignores it.
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [
                "unshare",
                "-rn",
                "sh",
                "-c",
                'ip link set lo up && exec "$0" "$@"',
                *_factory_command(),
                "up",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    try:
        banner = _read_banner(process)
        base = re.search(r"HTTP:\s+(http://\S+)", banner)
        assert base is not None, banner
        assert "(embedded; stopped on exit)" in banner
        assert "webhooks are disabled until FACTORY_WEBHOOK_SECRET is set" in banner
        assert f"Data dir:  {tmp_path / '.factory'}" in banner
        redis_servers = [
            child
            for child in psutil.Process(process.pid).children(recursive=True)
            if "redis-server" in child.name()
        ]
        assert len(redis_servers) == 1
        socket_dir = Path(re.search(r"unix://(\S+)/redis.sock", banner).group(1))  # type: ignore[union-attr]

        assert _get_inside(process.pid, base.group(1) + "/healthz") == (200, '{"status":"ok"}')
        status, body = _get_inside(process.pid, base.group(1) + "/readyz")
        assert status == 200, body

        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    log = stderr_path.read_text()
    assert "Traceback" not in log, log
    assert not redis_servers[0].is_running()
    assert not socket_dir.exists()
    assert (tmp_path / ".factory" / "factory.db").exists()


def test_up_with_a_redis_url_that_does_not_answer_fails_without_embedding(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "FACTORY_REDIS_URL": "redis://127.0.0.1:1/0",
        "FACTORY_PORT": "0",
    }
    result = subprocess.run(
        [*_factory_command(), "up"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 1
    assert "FACTORY_REDIS_URL=redis://127.0.0.1:1/0 does not answer" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_webhook_secret_prints_the_webhook_url_and_stops_on_sigterm(
    tmp_path: Path, redis_url: str
) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "FACTORY_REDIS_URL": redis_url,
        "FACTORY_PORT": "0",
        "FACTORY_WEBHOOK_SECRET": "0123456789abcdef0123",
    }
    process = subprocess.Popen(
        [*_factory_command(), "serve", "--migrate"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        banner = _read_banner(process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    assert re.search(r"Webhooks:  POST http://127\.0\.0\.1:\d+/webhooks/github", banner), banner
    assert "WARNING" not in banner and "Worker:" not in banner
    assert "0123456789abcdef0123" not in banner
