"""Getting a fresh checkout ready for the coder: the repository's setup steps, and keeping what
commands leave behind out of the commits.

Setup steps (`setup` in .github/factory.yml, read from the default branch only) are the one
place commands get network access: they install what the validation gates need before the
coder, whose own commands run offline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agents.sandbox import CommandResult, Sandbox, SandboxUnavailable
from agents.untrusted import sanitize
from agents.workspace import Workspace
from bot.github.errors import scrub
from knowledge.hardened_git import checkout_git_dir

# What commands leave in a work tree (bytecode, test and linter caches, installed packages).
# A repository's own .gitignore may not list them, and `commit_all` stages everything, so without
# this a model that ran the tests would commit their caches into the pull request.
COMMAND_LEFTOVERS: tuple[str, ...] = (
    "__pycache__/",
    "*.py[cod]",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".hypothesis/",
    ".tox/",
    ".nox/",
    ".coverage",
    "node_modules/",
    ".venv/",
    "venv/",
)

# How much of a failed setup command's output the step's details keep, and the one line of it
# the status comment shows.
_SETUP_OUTPUT_TAIL = 3000
_SETUP_LINE_LIMIT = 200


def exclude_leftovers(checkout: Workspace | Path) -> None:
    """List COMMAND_LEFTOVERS in the clone's info/exclude (files already tracked stay).

    Pass the Workspace: its git dir is the one the bot's git reads. A Path is a fresh clone's
    work tree, whose git dir is found through its ``.git``; only before any command ran there.
    """
    if isinstance(checkout, Workspace):
        git_dir = checkout.git_dir
    elif (found := checkout_git_dir(checkout)) is not None:
        git_dir = found
    else:
        raise ValueError(f"{checkout} is not a git checkout")
    _exclude(git_dir / "info" / "exclude", "caches commands leave behind", COMMAND_LEFTOVERS)


def _exclude(exclude: Path, why: str, patterns: Sequence[str]) -> None:
    exclude.parent.mkdir(parents=True, exist_ok=True)
    existing = exclude.read_text() if exclude.is_file() else ""
    missing = [p for p in patterns if p not in existing.splitlines()]
    if missing:
        text = existing if not existing or existing.endswith("\n") else existing + "\n"
        block = "\n".join([f"# Agent Factory: {why}", *missing])
        exclude.write_text(f"{text}{block}\n")


def _exclude_pattern(path: str) -> str:
    """An info/exclude line matching exactly `path` (relative to the root) and nothing else:
    anchored with `/`, glob characters and trailing spaces (which git would drop) escaped."""
    escaped = "".join(f"\\{c}" if c in "*?[\\" else c for c in path)
    stem = escaped.rstrip(" ")
    return "/" + stem + "\\ " * (len(escaped) - len(stem))


async def exclude_untracked(ws: Workspace) -> None:
    """Add every untracked, not yet ignored path to info/exclude: after the setup steps,
    these are what they wrote (an egg-info, a downloaded tool), which belongs in no commit."""
    listed = await ws.git("ls-files", "--others", "--exclude-standard", "--directory", "-z")
    paths = [_exclude_pattern(p) for p in listed.split("\0") if p]
    # Asked of the bot's own git, which names its git dir: never the work tree's `.git`.
    where = await ws.git("rev-parse", "--path-format=absolute", "--git-path", "info/exclude")
    _exclude(Path(where.strip()), "written by the setup steps", paths)


@dataclass(frozen=True)
class SetupFailure:
    summary: str
    details: str


async def run_setup(
    sandbox: Sandbox,
    workdir: Path,
    commands: Sequence[str],
    *,
    timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> SetupFailure | None:
    """Run the repository's setup commands in order, with network, sharing `timeout_s`.

    Stops at the first that fails or runs out of time; None when all of them passed.
    """
    deadline = clock() + timeout_s
    for number, command in enumerate(commands, start=1):
        step = f"setup step {number} of {len(commands)} `{scrub(sanitize(command))}`"
        left = deadline - clock()
        if left <= 0:
            return SetupFailure(
                f"{step} did not start: the setup steps used up `setup_timeout_s` "
                f"({timeout_s:g}s); the coder was not started",
                "",
            )
        try:
            result = await sandbox.run(command, cwd=workdir, timeout_s=left, network=True)
        except SandboxUnavailable as exc:
            return SetupFailure(f"{step} could not run: {exc}; the coder was not started", "")
        if not result.ok:
            return _setup_failure(step, result, timeout_s)
    return None


def _setup_failure(step: str, result: CommandResult, timeout_s: float) -> SetupFailure:
    if result.timed_out:
        how = f"timed out: the setup steps may take {timeout_s:g}s together (`setup_timeout_s`)"
    else:
        how = f"failed with exit code {result.exit_code}"
    # Package managers print their errors last; stderr first, stdout when it said nothing.
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines()]
    last = next((line for line in reversed(lines) if line), "")
    quoted = scrub(sanitize(last)).strip()[:_SETUP_LINE_LIMIT].replace("`", "'")
    said = f": `{quoted}`" if quoted else ""
    streams = [
        f"--- {name} ---\n{text.strip()}"
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr))
        if text.strip()
    ]
    tail = scrub(sanitize("\n".join(streams)))[-_SETUP_OUTPUT_TAIL:]
    fence = "~~~~" if "```" in tail else "```"
    details = (
        f"How the setup step ended (the end of its output):\n{fence}\n{tail}\n{fence}"
        if tail
        else "The setup command printed nothing."
    )
    return SetupFailure(f"{step} {how}{said}; the coder was not started", details)
