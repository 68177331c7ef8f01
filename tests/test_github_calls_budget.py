"""One happy-path run (plan → implementation → review → tests → deploy) stays within its
GitHub API budget: at most 40 REST calls and one installation token, measured by the same code
as ``benchmarks/github_calls.py`` on the fake GitHub with real workers, Redis and SQLite."""

from __future__ import annotations

import pytest

from benchmarks.github_calls import Tally, measure

pytestmark = pytest.mark.slow

BUDGET = 40
# Found by the ids the run remembers or the delivery carries, never searched for.
LOOKUPS = {
    "/repos/{owner}/{repo}/commits/{ref}/check-runs",
    "/repos/{owner}/{repo}/installation",
}


def table(result: Tally) -> str:
    return "\n".join(f"{n:>3} {m} {r} {s}" for (m, r, s), n in sorted(result.calls.items()))


async def test_a_happy_path_run_mints_one_token_and_looks_nothing_up(redis_url: str) -> None:
    result = await measure(redis_url, poll_s=0.5, timeout=120)

    assert result.state == "completed"
    assert result.mints == 1
    assert not [key for key in result.calls if key[1] in LOOKUPS], table(result)
    # Conditional requests are made: the configuration read again is answered 304.
    assert result.not_modified > 0, table(result)


async def test_a_happy_path_run_stays_within_forty_calls(redis_url: str) -> None:
    result = await measure(redis_url, poll_s=0.5, timeout=120)

    assert result.state == "completed"
    assert result.total <= BUDGET, table(result)
