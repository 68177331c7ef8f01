"""How many GitHub REST calls does one happy-path run make, and which?

Runs the real stack on this machine: the fake GitHub on loopback, the real HTTP app receiving
signed webhooks, real Redis and SQLite, and a real arq worker. The stage agents are the
scripted ones of the end-to-end tests (they make the same kinds of GitHub effects as the real
agents), except deploy, which is the real ``DeployerStage`` dispatching ``deploy.yml``. One
issue is labelled and driven through plan → implementation → review → tests → deploy; the
deploy workflow run is completed as soon as it exists.

Every request the fake served is counted by operation: method, route template and status
(a 304 is a conditional request answered "unchanged", which GitHub does not count against the
rate limit). Installation token mints are counted apart (they are ``POST
/app/installations/{id}/access_tokens`` calls made with the App's JWT). Git smart-HTTP
requests (clone, fetch, push) are not REST calls and are listed on their own line.

    python -m benchmarks.github_calls            # claims a free Redis database 1-15
    python -m benchmarks.github_calls --json     # machine-readable
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from agents.deploy_stage import DeployerStage
from bot.contracts.lifecycle import Stage
from tests.e2e.harness import Bot, running_bot
from tests.e2e.scripted_agents import scripted_agents
from tests.fakegithub.state import RecordedRequest

FACTORY_YML = """\
deploy:
  workflow: deploy.yml
  environments: [staging]
"""
DEPLOY_WORKFLOW = """\
name: Deploy
on:
  workflow_dispatch:
    inputs:
      environment: {required: true}
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps: [{run: ./deploy.sh}]
"""
FILES = {
    "README.md": "# demo\n",
    ".github/factory.yml": FACTORY_YML,
    ".github/workflows/deploy.yml": DEPLOY_WORKFLOW,
}
MINT_ROUTE = "/app/installations/{id}/access_tokens"
# The test suite's claim on a Redis database (tests/conftest.py): the same key keeps a
# benchmark and tests running at the same time out of each other's data.
REDIS_CLAIM_KEY = "factory-tests:claimed-by"
# The run is over when no request has reached the fake for this long after completion.
QUIET_S = 1.5


@dataclass(frozen=True)
class Tally:
    """REST calls by (method, route, status); mints and git requests counted apart."""

    calls: Counter[tuple[str, str, int]]
    mints: int
    git_requests: int
    state: str
    trace: tuple[RecordedRequest, ...] = field(default=(), repr=False)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def not_modified(self) -> int:
        return sum(n for (_, _, status), n in self.calls.items() if status == 304)


def tally(requests: Sequence[RecordedRequest], state: str) -> Tally:
    calls: Counter[tuple[str, str, int]] = Counter()
    mints = git = 0
    for r in requests:
        if ".git/" in r.path:
            git += 1
            continue
        if r.method == "POST" and r.route == MINT_ROUTE:
            mints += 1
        calls[(r.method, r.route or f"{r.path} (no route)", r.status)] += 1
    rest = tuple(r for r in requests if ".git/" not in r.path)
    return Tally(calls, mints, git, state, rest)


async def complete_deploys(bot: Bot, stop: asyncio.Event) -> None:
    """Plays the deploy workflow: each dispatched run succeeds as soon as it exists."""
    done: set[int] = set()
    while not stop.is_set():
        for run in bot.fake.workflow_runs(bot.repo):
            if run.id not in done and run.status != "completed":
                done.add(run.id)
                await asyncio.to_thread(bot.fake.complete_workflow_run, run.id, "success")
        await asyncio.sleep(0.005)


async def wait_quiet(bot: Bot, quiet_s: float, timeout: float) -> None:
    """Until no request has reached the fake for ``quiet_s`` (late status/check writes)."""
    deadline = time.monotonic() + timeout
    seen, since = len(bot.fake.requests), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now = len(bot.fake.requests)
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return


async def measure(redis_url: str, poll_s: float, timeout: float) -> Tally:
    with tempfile.TemporaryDirectory() as tmp:
        async with running_bot(Path(tmp), redis_url, files=FILES) as bot:
            agents = {**scripted_agents(), Stage.DEPLOY: DeployerStage(poll_s=poll_s)}
            bot.start_worker(agents)
            stop = asyncio.Event()
            deployer = asyncio.create_task(complete_deploys(bot, stop))
            try:
                issue = bot.fake.create_issue(bot.repo, "Add a greeting", "Print hello.")
                bot.fake.label_issue(bot.repo, issue, "factory", user="alice")
                feature = await bot.wait_for_state("completed", "failed", timeout=timeout)
                await wait_quiet(bot, QUIET_S, timeout)
            finally:
                stop.set()
                await deployer
            return tally(bot.fake.requests, feature.state)


@contextlib.contextmanager
def claimed_redis_db(host: str = "127.0.0.1", port: int = 6379) -> Iterator[str]:
    """A Redis database nobody else uses, flushed afterwards (as the tests claim theirs)."""
    owner = f"{os.getpid()}:{uuid.uuid4().hex}"
    for number in range(15, 0, -1):
        client = redis.Redis(host=host, port=port, db=number)
        try:
            if client.set(REDIS_CLAIM_KEY, owner, nx=True, ex=900) and client.dbsize() == 1:
                break
            if client.get(REDIS_CLAIM_KEY) == owner.encode():
                client.delete(REDIS_CLAIM_KEY)
        finally:
            client.close()
    else:
        raise SystemExit(f"every Redis database 1-15 at {host}:{port} is in use")
    try:
        yield f"redis://{host}:{port}/{number}"
    finally:
        client = redis.Redis(host=host, port=port, db=number)
        try:
            client.flushdb()
        finally:
            client.close()


def render(result: Tally) -> str:
    width = max((len(f"{m} {r}") for m, r, _ in result.calls), default=20)
    lines = [f"{'calls':>5}  {'operation':<{width}}  status", "-" * (width + 15)]
    for (method, route, status), count in sorted(
        result.calls.items(), key=lambda item: (-item[1], item[0])
    ):
        lines.append(f"{count:>5}  {f'{method} {route}':<{width}}  {status}")
    lines += [
        "-" * (width + 15),
        f"{result.total:>5}  REST calls in total",
        f"{result.total - result.not_modified:>5}  counted against the rate limit"
        + f" ({result.not_modified} answered 304 Not Modified)",
        f"{result.mints:>5}  installation token mints",
        f"{result.git_requests:>5}  git smart-HTTP requests (clone/fetch/push; not REST)",
        f"run ended: {result.state}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--poll", type=float, default=0.5, help="seconds between the deploy stage's polls"
    )
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--trace", action="store_true", help="also list every REST call in the order made"
    )
    args = parser.parse_args()
    with claimed_redis_db() as redis_url:
        result = asyncio.run(measure(redis_url, args.poll, args.timeout))
    if args.json:
        rows = [
            {"method": m, "route": r, "status": s, "calls": n}
            for (m, r, s), n in sorted(result.calls.items())
        ]
        print(
            json.dumps(
                {
                    "calls": rows,
                    "total": result.total,
                    "not_modified": result.not_modified,
                    "rate_limited": result.total - result.not_modified,
                    "token_mints": result.mints,
                    "git_requests": result.git_requests,
                    "state": result.state,
                },
                indent=2,
            )
        )
    else:
        if args.trace:
            for i, r in enumerate(result.trace, 1):
                print(f"{i:>4}  {r.method:<6} {r.path}  {r.status}")
            print()
        print(render(result))


if __name__ == "__main__":
    main()
