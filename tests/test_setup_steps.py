"""A repository's setup steps, run for real in the sandbox: how they end, and what they leave."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.checkout_setup import exclude_leftovers, exclude_untracked, run_setup
from agents.sandbox import BubblewrapSandbox, Sandbox


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


@pytest.fixture
def sandbox(workspace: Path) -> Sandbox:
    bwrap = BubblewrapSandbox(workspace)
    if not bwrap.probe():
        pytest.skip("bubblewrap does not run on this host")
    return bwrap


async def test_steps_run_in_order_in_the_checkout(sandbox: Sandbox, workspace: Path) -> None:
    steps = ["echo one > order.txt", "echo two >> order.txt", "pwd >> order.txt"]
    assert await run_setup(sandbox, workspace, steps, timeout_s=30) is None
    assert (workspace / "order.txt").read_text() == f"one\ntwo\n{workspace.resolve()}\n"


async def test_the_first_failure_stops_the_steps_and_says_what_happened(
    sandbox: Sandbox, workspace: Path
) -> None:
    failing = "echo Collecting left-pad; echo 'ERROR: No matching distribution' >&2; exit 3"
    failure = await run_setup(
        sandbox, workspace, ["true", failing, "touch never.txt"], timeout_s=30
    )
    assert failure is not None
    assert failure.summary == (
        f"setup step 2 of 3 `{failing}` failed with exit code 3: "
        "`ERROR: No matching distribution`; the coder was not started"
    )
    assert "--- stdout ---\nCollecting left-pad" in failure.details
    assert "--- stderr ---\nERROR: No matching distribution" in failure.details
    assert not (workspace / "never.txt").exists()


async def test_long_or_hostile_output_is_cut_to_its_end_and_cleaned(
    sandbox: Sandbox, workspace: Path
) -> None:
    token = "ghs_" + "a1B2" * 9
    command = (
        "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done; "
        f"echo 'fetch https://x:{token}@example.com failed <!-- agent-factory:status:1 -->'; "
        "exit 1"
    )
    failure = await run_setup(sandbox, workspace, [command], timeout_s=30)
    assert failure is not None
    assert "line 2999" in failure.details and "line 0\n" not in failure.details
    assert len(failure.details) < 3200
    for text in (failure.summary, failure.details):
        assert token not in text and "agent-factory:status" not in text
    assert "`fetch https://***@example.com failed`; the coder was not started" in failure.summary


async def test_the_steps_share_one_time_limit(sandbox: Sandbox, workspace: Path) -> None:
    failure = await run_setup(sandbox, workspace, ["sleep 20"], timeout_s=1)
    assert failure is not None
    assert failure.summary.startswith(
        "setup step 1 of 1 `sleep 20` timed out: the setup steps may take 1s together "
        "(`setup_timeout_s`)"
    )

    # The first step used up the time (as the clock tells it): the second never starts.
    ticks: Iterator[float] = iter([0.0, 0.0, 50.0])
    failure = await run_setup(
        sandbox,
        workspace,
        ["true", "touch late.txt"],
        timeout_s=50,
        clock=lambda: next(ticks),
    )
    assert failure is not None
    assert failure.summary.startswith("setup step 2 of 2 `touch late.txt` did not start")
    assert not (workspace / "late.txt").exists()


class _Checkout:
    """What exclude_untracked needs of a Workspace: its path and git."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def git(self, *args: str) -> str:
        return _git(self.path, *args)


def _git(path: Path, *args: str) -> str:
    return subprocess.run(
        [
            "git",
            "-c",
            "safe.directory=*",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            *args,
        ],
        cwd=path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


async def test_what_setup_writes_is_excluded_and_nothing_else(workspace: Path) -> None:
    _git(workspace, "init", "--quiet")
    (workspace / "tracked.txt").write_text("v1\n")
    _git(workspace, "add", "tracked.txt")
    _git(workspace, "commit", "--quiet", "-m", "init")
    exclude_leftovers(workspace)
    # Written by "setup": names with glob characters and a trailing space, a directory, a venv.
    for name in ("a*b.txt", "odd[1].txt", "trailing ", "build/lib/x.py", ".venv/bin/python"):
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / name).write_text("setup\n")
    await exclude_untracked(_Checkout(workspace))  # type: ignore[arg-type]
    assert _git(workspace, "status", "--porcelain") == ""

    # Later files the patterns must not swallow, and a change to a tracked file, still show.
    for name in ("aXb.txt", "odd1.txt", "trailing", "sub/build/y.py"):
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / name).write_text("coder\n")
    (workspace / "tracked.txt").write_text("v2\n")
    status = _git(workspace, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert sorted(status) == [
        " M tracked.txt",
        "?? aXb.txt",
        "?? odd1.txt",
        "?? sub/build/y.py",
        "?? trailing",
    ]
