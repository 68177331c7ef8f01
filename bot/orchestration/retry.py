"""The one retry rule for jobs and steps: which failures are worth another try, and when.

A job (or a stage agent) that fails on something passing, a GitHub 5xx or rate limit or an
overloaded model, is tried again later through arq's ``Retry``; anything else, or a passing
failure that outlasts ``max_tries``, fails for good and is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.github.errors import GitHubError, GitHubRateLimited


class TransientError(Exception):
    """A failure worth retrying later (GitHub 5xx, rate limits, LLM overload)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def shortest_wait(exc: BaseException) -> float | None:
    """Seconds to wait at least before retrying after ``exc``; None when retrying cannot help."""
    if isinstance(exc, GitHubRateLimited):
        return max(1.0, exc.retry_after)
    if isinstance(exc, GitHubError) and (exc.status is None or exc.status >= 500):
        return 5.0
    if isinstance(exc, TransientError):
        return exc.retry_after_s or 5.0
    return None


@dataclass(frozen=True)
class RetryPolicy:
    max_tries: int = 5
    max_backoff_s: float = 60.0

    def defer(self, exc: BaseException, job_try: int) -> float | None:
        """When try ``job_try`` (1-based) failed with ``exc``: seconds until the next try, or
        None when there is none (not transient, or the tries are used up). Exponential backoff,
        never sooner than the failure itself asks (a rate limit's reset)."""
        wait = shortest_wait(exc)
        if wait is None or job_try >= self.max_tries:
            return None
        return max(wait, min(self.max_backoff_s, 2.0**job_try))
