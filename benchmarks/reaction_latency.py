"""From a webhook POST to the 👀 reaction at the (fake) GitHub: how fast does the bot answer?

Runs the real stack on this machine: the fake GitHub on loopback, the real HTTP app (in
process) receiving a signed ``issues.labeled`` delivery, real Redis and SQLite, and a real arq
worker with scripted stage agents. For each of N fresh issues it posts one delivery and polls
the fake until the bot's reaction appears, then prints p50/p95/max.

    python -m benchmarks.reaction_latency --issues 40 --redis-db 13
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import redis

from tests.e2e.harness import running_bot
from tests.e2e.scripted_agents import scripted_agents


async def measure(issues: int, redis_url: str, gap_s: float) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with running_bot(Path(tmp), redis_url) as bot:
            bot.fake.set_webhook_sink()  # no deliveries but the ones we time
            bot.start_worker(scripted_agents())
            from bot.app import create_app

            app = create_app(bot.settings, bot.services)
            transport = httpx.ASGITransport(app=app)
            latencies: list[float] = []
            async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
                # One warm-up delivery: the first mints the installation token.
                for index in range(issues + 1):
                    number = bot.fake.create_issue(bot.repo, f"Issue {index}", "body", user="alice")
                    bot.fake.label_issue(bot.repo, number, "factory", user="alice")
                    headers, body = bot.fake.build_webhook(
                        "issues",
                        "labeled",
                        repo=bot.repo,
                        number=number,
                        label="factory",
                        sender="alice",
                    )
                    started = time.perf_counter()
                    response = await client.post(
                        "/webhooks/github", content=body, headers=dict(headers)
                    )
                    assert response.status_code == 202, response.text
                    while not any(
                        r.content == "eyes" for r in bot.fake.reactions(bot.repo, number)
                    ):
                        if time.perf_counter() - started > 10:
                            raise RuntimeError(f"no reaction on issue {number} within 10 s")
                        await asyncio.sleep(0.002)
                    if index:
                        latencies.append((time.perf_counter() - started) * 1000)
                    await asyncio.sleep(gap_s)
            return latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issues", type=int, default=40)
    parser.add_argument(
        "--redis-db", type=int, default=13, help="a Redis database number this run may flush"
    )
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between deliveries")
    args = parser.parse_args()
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    redis.Redis.from_url(redis_url).flushdb()
    try:
        latencies = asyncio.run(measure(args.issues, redis_url, args.gap))
    finally:
        redis.Redis.from_url(redis_url).flushdb()
    ordered = sorted(latencies)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    print(f"deliveries: {len(ordered)}")
    print(
        f"POST -> 👀 reaction  p50 {statistics.median(ordered):.0f} ms  p95 {p95:.0f} ms  max {ordered[-1]:.0f} ms"
    )
    print(f"goal p95 < 500 ms: {'met' if p95 < 500 else 'NOT met'}")


if __name__ == "__main__":
    main()
