"""When to retry a GitHub request: githubkit's retry hook, bounded so a job never sleeps long.

GitHub answers an exhausted rate limit with 403/429 and ``retry-after`` (secondary limits) or
``x-ratelimit-reset`` (primary limit). Short waits are slept through in place; a wait longer
than ``max_wait`` is not retried here, so the caller sees :class:`GitHubRateLimited` and can
re-queue the job for later instead of holding a worker for up to an hour.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from githubkit.exception import GitHubException, RateLimitExceeded
from githubkit.retry import RetryChainDecision, RetryServerError
from githubkit.typing import RetryDecisionFunc, RetryOption

logger = logging.getLogger(__name__)

# githubkit sleeps 60 s when told to retry after a zero (falsy) delay, and GitHub sends
# `retry-after: 0` or a reset time already past; wait this long instead.
_MIN_WAIT = timedelta(milliseconds=100)


class BoundedRateLimitRetry:
    """Retry rate-limited requests up to ``max_retries`` times while each wait is short."""

    __slots__ = ("max_retries", "max_wait")

    def __init__(self, max_retries: int = 3, max_wait: timedelta = timedelta(seconds=60)) -> None:
        self.max_retries = max_retries
        self.max_wait = max_wait

    def __call__(self, exc: GitHubException, retry_count: int) -> RetryOption:
        if not isinstance(exc, RateLimitExceeded) or retry_count >= self.max_retries:
            return RetryOption(False)
        if exc.retry_after > self.max_wait:
            return RetryOption(False)
        wait = max(exc.retry_after, _MIN_WAIT)
        logger.warning(
            "GitHub rate limit on %s %s; retrying in %.1fs (attempt %d)",
            exc.request.method,
            exc.request.url.path,
            wait.total_seconds(),
            retry_count + 1,
        )
        return RetryOption(True, wait)


def default_retry(
    *, max_retries: int = 3, max_wait: timedelta = timedelta(seconds=60)
) -> RetryDecisionFunc:
    """Rate limits (bounded as above), then server errors (githubkit's 1 s, 4 s backoff)."""
    return RetryChainDecision(
        BoundedRateLimitRetry(max_retries, max_wait), RetryServerError(max_retry=2)
    )
