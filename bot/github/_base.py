"""What every group of repository operations shares: the client, the repository, the bot."""

from __future__ import annotations

from typing import Any, TypeVar

from githubkit import GitHub
from githubkit.utils import UNSET

T = TypeVar("T")

# GitHub's limit for issue, comment, PR and review bodies (characters).
BODY_LIMIT = 65536
_TRUNCATED = "\n\n…(truncated)"


def fit(text: str, limit: int = BODY_LIMIT) -> str:
    """``text`` cut to GitHub's size limit, saying so, rather than a 422 for the whole call."""
    if len(text) <= limit:
        return text
    return text[: limit - len(_TRUNCATED)] + _TRUNCATED


def present(value: T | Any) -> T | None:
    """githubkit marks fields GitHub left out as ``UNSET``; we say None."""
    return None if value is UNSET else value


class RepoScope:
    """One repository, reached through an installation client, acting as ``bot_login``."""

    def __init__(self, gh: GitHub[Any], owner: str, repo: str, bot_login: str) -> None:
        # A strong reference: githubkit's ``gh.rest`` namespaces only hold a weak one.
        self.gh = gh
        self.owner = owner
        self.repo = repo
        self.bot_login = bot_login

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"
