"""Run one argv under resource limits and a wall-clock limit, and leave no process behind."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import shutil
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agents.sandbox.base import CommandResult
from agents.sandbox.capture import BoundedOutput, pump
from agents.sandbox.quota import QuotaWatch

# After the command ends or is killed, how long to wait for its pipes to close. A process that
# escaped the kill (only possible in the weakest backend) could hold them open forever.
_DRAIN_GRACE_S = 2.0
_MB = 1024 * 1024
_PRLIMIT_OPTIONS = {
    resource.RLIMIT_AS: "as",
    resource.RLIMIT_CPU: "cpu",
    resource.RLIMIT_FSIZE: "fsize",
    resource.RLIMIT_NPROC: "nproc",
    resource.RLIMIT_NOFILE: "nofile",
    resource.RLIMIT_CORE: "core",
}

PreExec = Callable[[], None]

_FILE_TOO_LARGE = "File too large"
_OUT_OF_MEMORY = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")
OUT_OF_PROCESSES = (
    "Resource temporarily unavailable",
    "fork: retry",
    "BlockingIOError: [Errno 11]",
    "can't fork",
    "Cannot fork",
)


@dataclass(frozen=True)
class ResourceLimits:
    """Per-process rlimits applied to the sandbox's first process and inherited by its children.

    RLIMIT_NPROC counts every process of the real user id, and the kernel does not enforce it for
    root: the sandboxes therefore never run a command as root (see agents.sandbox.identity).
    """

    memory_mb: int = 2048
    file_size_mb: int = 1024
    nproc: int = 256
    open_files: int = 1024
    # util-linux `prlimit` sets the limits and execs the command, so the bot needs no preexec_fn,
    # which can deadlock a child forked from a process with threads (the worker has several).
    prlimit_path: str | None = field(default_factory=lambda: shutil.which("prlimit"))

    def values(self, cpu_seconds: int) -> dict[int, int]:
        """The limits for one command, capped at the hard limits this process already has."""
        wanted = {
            resource.RLIMIT_AS: self.memory_mb * _MB,
            resource.RLIMIT_CPU: cpu_seconds,
            resource.RLIMIT_FSIZE: self.file_size_mb * _MB,
            resource.RLIMIT_NPROC: self.nproc,
            resource.RLIMIT_NOFILE: self.open_files,
            resource.RLIMIT_CORE: 0,
        }
        capped = {}
        for which, value in wanted.items():
            _soft, hard = resource.getrlimit(which)
            capped[which] = value if hard == resource.RLIM_INFINITY else min(value, hard)
        return capped

    def explain(self, exit_code: int, output: str) -> str | None:
        """The limit a failed command most likely ran into, from how it failed; None if none.

        Programs report an exhausted rlimit in their own words, on either stream (test runners
        print to stdout); these are the common ones.
        """
        if exit_code == 0:
            return None
        if exit_code == 128 + signal.SIGXFSZ or _FILE_TOO_LARGE in output:
            return f"a file reached the sandbox's file-size limit ({self.file_size_mb:,} MB)"
        if any(sign in output for sign in _OUT_OF_MEMORY):
            return f"the command ran out of the sandbox's memory limit ({self.memory_mb:,} MB)"
        if any(sign in output for sign in OUT_OF_PROCESSES):
            return f"the command reached the sandbox's process limit ({self.nproc} processes)"
        return None

    def wrap(self, argv: Sequence[str], cpu_seconds: int) -> tuple[list[str], PreExec | None]:
        """argv behind prlimit, or argv unchanged plus a preexec_fn when prlimit is missing."""
        values = self.values(cpu_seconds)
        if self.prlimit_path:
            options = [f"--{_PRLIMIT_OPTIONS[which]}={value}" for which, value in values.items()]
            return [self.prlimit_path, *options, "--", *argv], None

        def apply() -> None:
            for which, value in values.items():
                resource.setrlimit(which, (value, value))

        return list(argv), apply


async def run_argv(
    argv: Sequence[str],
    *,
    command: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    limits: ResourceLimits,
    output_limit: int,
    quota: QuotaWatch | None = None,
) -> CommandResult:
    """Run argv in its own session; on timeout, a passed disk quota or cancellation kill its
    whole process tree."""
    stdout, stderr = BoundedOutput(output_limit), BoundedOutput(output_limit)
    started = time.monotonic()
    # CPU time is a backstop for the wall clock: even if the kill below failed, a spinning process
    # would be stopped by the kernel shortly after its deadline.
    cpu_seconds = max(1, math.ceil(timeout_s) + 1)
    limited_argv, preexec = limits.wrap(argv, cpu_seconds)
    if quota is not None:
        await quota.baseline()
    proc = await asyncio.create_subprocess_exec(
        *limited_argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
        preexec_fn=preexec,
    )
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        asyncio.create_task(pump(proc.stdout, stdout)),
        asyncio.create_task(pump(proc.stderr, stderr)),
    ]
    timed_out = False
    exited = asyncio.create_task(_leader_exit(proc))
    watcher = asyncio.create_task(quota.run()) if quota is not None else None
    try:
        done, _ = await asyncio.wait(
            {exited, *([watcher] if watcher else [])},
            timeout=timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        timed_out = not done
    finally:
        for task in (exited, watcher):
            if task is not None and not task.done():
                task.cancel()
        # Runs on normal exit too: background children left in the group are killed, and on
        # cancellation the command does not outlive the agent that started it.
        kill_process_tree(proc.pid)
        if await _drain(readers):
            await proc.wait()
        else:
            await asyncio.wait_for(_leader_exit(proc), timeout=_DRAIN_GRACE_S)
    exit_code = _exit_code(proc.returncode)
    limit = quota.exceeded if quota is not None else None
    if limit is None and not timed_out:
        limit = limits.explain(exit_code, stdout.text() + stderr.text())
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


def with_limit(stderr: str, limit: str | None) -> str:
    """stderr with the sandbox's own line about a limit appended (models and people read both)."""
    if limit is None:
        return stderr
    separator = "" if not stderr or stderr.endswith("\n") else "\n"
    return f"{stderr}{separator}[sandbox] {limit}\n"


async def _leader_exit(proc: asyncio.subprocess.Process) -> None:
    """Wait until the first process exits, whoever still holds its pipes.

    Process.wait() also waits for stdout and stderr to close, which a background child inherits:
    `server & echo started` would then block until the deadline. A pidfd becomes readable the
    moment the process itself exits.
    """
    if proc.returncode is None:
        try:
            pidfd: int | None = os.pidfd_open(proc.pid)
        except ProcessLookupError:
            pidfd = None  # Already reaped by the event loop's child watcher.
        if pidfd is not None:
            try:
                await _readable(pidfd)
            finally:
                os.close(pidfd)
    # Exited, but the child watcher's callback may still be on its way to set returncode.
    while proc.returncode is None:
        await asyncio.sleep(0.005)


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def on_ready() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, on_ready)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def _drain(readers: list[asyncio.Task[None]]) -> bool:
    """Let the readers finish; True when both pipes reached end of file within the grace period."""
    _done, pending = await asyncio.wait(readers, timeout=_DRAIN_GRACE_S)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return not pending


def _exit_code(returncode: int | None) -> int:
    if returncode is None:
        return -1
    # Report death by signal the way a shell does (SIGKILL -> 137), which models already understand.
    return 128 - returncode if returncode < 0 else returncode


def kill_process_tree(leader_pid: int) -> None:
    """SIGKILL the leader's process group and every descendant still linked to it.

    Descendants are frozen with SIGSTOP first and the tree re-read until it stops growing, so a
    process cannot fork a child that escapes between the snapshot and the kill.
    """
    stopped: set[int] = set()
    for _ in range(10):
        fresh = _descendants(leader_pid) - stopped
        if not fresh:
            break
        for pid in fresh:
            _signal(pid, signal.SIGSTOP)
        stopped |= fresh
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader_pid, signal.SIGKILL)
    for pid in stopped:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _descendants(root_pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in _process_parents():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    frontier = [root_pid]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def _process_parents() -> list[tuple[int, int]]:
    pairs: list[tuple[int, int]] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return pairs
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                raw = stat.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses; fields resume after the last ')'.
        fields = raw[raw.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            pairs.append((int(name), int(fields[1])))
    return pairs
