"""What every group of repository operations shares: the client, the repository, the bot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from githubkit import GitHub
from githubkit.utils import UNSET

if TYPE_CHECKING:
    from .conditional import CommitFacts
    from .models import RepoInfo

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
    """One repository, reached through an installation client, acting as ``bot_login``.

    ``info``: the repository's metadata if the caller knows it (then it is never read);
    ``commit_facts``: where reads at a commit sha are remembered (None: not remembered).
    """

    def __init__(
        self,
        gh: GitHub[Any],
        owner: str,
        repo: str,
        bot_login: str,
        *,
        info: RepoInfo | None = None,
        commit_facts: CommitFacts | None = None,
    ) -> None:
        # A strong reference: githubkit's ``gh.rest`` namespaces only hold a weak one.
        self.gh = gh
        self.owner = owner
        self.repo = repo
        self.bot_login = bot_login
        self._info = info
        self._commit_facts = commit_facts

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"
