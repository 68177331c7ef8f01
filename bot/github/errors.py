"""Errors raised by the GitHub layer, translated from githubkit so that no credential leaks.

githubkit's exceptions carry the original ``httpx.Request`` (with its ``Authorization``
header). Callers get our own exceptions instead: a short message naming the operation, the
HTTP status and GitHub's own explanation, with anything token-shaped scrubbed out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from githubkit.exception import (
    GitHubException,
    RateLimitExceeded,
    RequestFailed,
    RequestTimeout,
)

# GitHub token formats (classic/fine-grained PATs, OAuth, installation, user-to-server,
# refresh) and JWTs (an App's signed assertion always starts with a base64 '{"').
_SECRET_PATTERNS = (
    re.compile(r"\b(?:gh[pousr]_|github_pat_)[A-Za-z0-9_]{16,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    re.compile(r"(?i)\b(authorization:\s*(?:bearer|token|basic))\s+\S+"),
    re.compile(r"(?i)(https?://)[^/@\s:]+:[^/@\s]+@"),
)
_MAX_DETAIL = 500


def scrub(text: str, *secrets: str) -> str:
    """Remove the given secrets and anything shaped like a GitHub credential from ``text``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _SECRET_PATTERNS[0].sub("***", text)
    text = _SECRET_PATTERNS[1].sub("***", text)
    text = _SECRET_PATTERNS[2].sub(r"\1 ***", text)
    return _SECRET_PATTERNS[3].sub(r"\1***@", text)


class GitHubError(Exception):
    """A GitHub API call failed. ``status`` is None when no HTTP answer arrived."""

    def __init__(self, operation: str, status: int | None, detail: str) -> None:
        self.operation = operation
        self.status = status
        self.detail = scrub(detail)[:_MAX_DETAIL]
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"GitHub {operation} failed ({where}): {self.detail}")


class GitHubNotFound(GitHubError):
    """404: the thing does not exist, or the installation cannot see it."""


class GitHubValidationFailed(GitHubError):
    """422: GitHub refused the request's content."""


class GitHubRateLimited(GitHubError):
    """Still rate limited after the allowed retries; try again after ``retry_after`` seconds."""

    def __init__(self, operation: str, status: int, detail: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(operation, status, f"{detail} (retry after {retry_after:.0f}s)")


def _github_message(exc: RequestFailed) -> str:
    try:
        payload: Any = exc.response.raw_response.json()
    except ValueError:
        return exc.response.raw_response.text[:_MAX_DETAIL] or exc.response.reason_phrase
    if not isinstance(payload, dict):
        return str(payload)
    message = str(payload.get("message", ""))
    errors = payload.get("errors")
    if isinstance(errors, list) and errors:
        parts = [
            str(e.get("message") or e.get("code") or e) if isinstance(e, dict) else str(e)
            for e in errors
        ]
        message = f"{message}: {'; '.join(parts)}"
    return message or exc.response.reason_phrase


def translate(operation: str, exc: GitHubException) -> GitHubError:
    """Our exception for a githubkit one (never carrying the request or its headers)."""
    if isinstance(exc, RateLimitExceeded):
        return GitHubRateLimited(
            operation,
            exc.response.status_code,
            _github_message(exc),
            exc.retry_after.total_seconds(),
        )
    if isinstance(exc, RequestFailed):
        status = exc.response.status_code
        cls = {404: GitHubNotFound, 422: GitHubValidationFailed}.get(status, GitHubError)
        return cls(operation, status, _github_message(exc))
    if isinstance(exc, RequestTimeout):
        return GitHubError(operation, None, "request timed out")
    cause = getattr(exc, "exc", None)
    if isinstance(cause, GitHubError):
        # Raised inside the auth flow, e.g. minting the installation token failed.
        return cause
    return GitHubError(operation, None, f"{type(cause or exc).__name__}: {cause or exc}")


@contextmanager
def github_errors(operation: str) -> Iterator[None]:
    """Run a block of githubkit calls, re-raising failures as :class:`GitHubError`.

    The githubkit exception is dropped from the chain (``from None``) because it holds the
    request, and error reporters that render exception attributes would show its headers.
    """
    try:
        yield
    except GitHubException as exc:
        raise translate(operation, exc) from None
