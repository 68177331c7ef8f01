"""Per-command overhead of each sandbox backend available here.

Run: .venv/bin/python -m benchmarks.sandbox [--runs 20] [--docker-image IMAGE]
Docker is measured only when an engine answers (DOCKER_HOST is honoured) and has the image.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from agents.sandbox import (
    DEFAULT_DOCKER_IMAGE,
    BubblewrapSandbox,
    Sandbox,
    SandboxUnavailable,
    SubprocessSandbox,
    UnshareSandbox,
    make_sandbox,
)


async def _measure(sandbox: Sandbox, workspace: Path, runs: int) -> list[float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        result = await sandbox.run("true", cwd=workspace, timeout_s=30)
        timings.append(time.perf_counter() - started)
        if not result.ok:
            raise RuntimeError(f"{sandbox.name}: `true` failed: {result.stderr}")
    return timings


async def main(runs: int, docker_image: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        sandboxes: list[Sandbox] = [
            candidate
            for candidate in (BubblewrapSandbox(workspace), UnshareSandbox(workspace))
            if candidate.probe()
        ]
        sandboxes.append(SubprocessSandbox(workspace))
        try:
            sandboxes.append(
                make_sandbox("docker", workspace_root=workspace, docker_image=docker_image)
            )
        except SandboxUnavailable as exc:
            print(f"docker: skipped ({exc})")
        for sandbox in sandboxes:
            timings = await _measure(sandbox, workspace, runs)
            print(
                f"{sandbox.name:>10}: median {statistics.median(timings) * 1000:7.1f} ms, "
                f"max {max(timings) * 1000:7.1f} ms over {runs} runs of `true`"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--docker-image", default=DEFAULT_DOCKER_IMAGE)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, arguments.docker_image))
