"""Who may do what: GitHub's repository permission, narrowed by `.github/factory.yml`.

Rules, in order:

1. Bots (sender type `Bot`, or a login ending in `[bot]`) never trigger anything, and get no
   reply: two bots answering each other would loop.
2. Mutating commands and adding the trigger label need write, maintain or admin permission.
   Read-only commands (help, status, ask, config) are open to anyone who can comment, unless the
   configuration sets `permissions.read_only_open: false`.
3. `permissions.restrict_to` can narrow a command or group further to listed users and
   `org/team-slug` teams; it never widens rule 2.

Events that start, resume or steer work follow the same rules as the command they amount to
(see `bot.orchestration.gate`): a review asking for changes, a review comment or a workflow run is
`revise`, re-running a stage's check is that stage's command, re-running a check suite is
`retry`. The event's actor is its sender (for a review, its author).

Permissions come from a callable (GitHub's collaborator-permission endpoint through the job's
repository client; it should return "none" for a user GitHub answers 404 for), given per call
or once to the checker, and are cached in Redis for `ttl_s` seconds, so a burst of commands
costs one API call, and a revoked permission stops working within a minute.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from bot.contracts.commands import COMMAND_PREFIX, COMMANDS
from bot.contracts.config import RepoConfig

LABEL = "label"
WRITE_LEVELS: frozenset[str] = frozenset({"admin", "maintain", "write"})

# (repository "owner/name", login) -> "admin" | "maintain" | "write" | "triage" | "read" | "none"
FetchPermission = Callable[[str, str], Awaitable[str]]
# (org, team slug, login) -> whether the user is an active member of the team
TeamMembership = Callable[[str, str, str], Awaitable[bool]]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # For a refusal: a polite sentence for the user. For a bot: "bot".
    reason: str
    # False: post nothing at all (bots).
    notify: bool = True


def is_bot(login: str, sender_type: str) -> bool:
    return sender_type == "Bot" or login.endswith("[bot]")


class PermissionChecker:
    def __init__(
        self,
        fetch_permission: FetchPermission | None = None,
        *,
        redis: Redis,
        ttl_s: int = 60,
        key_prefix: str = "factory:perm:",
    ) -> None:
        self._fetch_permission = fetch_permission
        self._redis = redis
        self._ttl_s = ttl_s
        self._key_prefix = key_prefix

    async def decide(
        self,
        repo: str,
        login: str,
        sender_type: str,
        command: str,
        config: RepoConfig,
        *,
        fetch_permission: FetchPermission | None = None,
        team_membership: TeamMembership | None = None,
        subject: str | None = None,
    ) -> Decision:
        """May `login` run `command` (a command name, or LABEL for the trigger label)?

        ``subject`` names what is being done in a refusal when it is not the command itself,
        e.g. "A review asking for changes" for an event judged as `revise`.
        """
        if is_bot(login, sender_type):
            return Decision(allowed=False, reason="bot", notify=False)
        if command == LABEL:
            read_only = False
            named = f"Adding the `{config.trigger_label}` label"
        elif command in COMMANDS:
            read_only = COMMANDS[command].read_only
            named = f"`{COMMAND_PREFIX} {command}`"
        else:
            raise ValueError(f"unknown command {command!r}")
        subject = subject or named

        if not read_only or not config.permissions.read_only_open:
            permission = await self.permission(repo, login, fetch_permission=fetch_permission)
            if permission not in WRITE_LEVELS:
                return Decision(
                    allowed=False,
                    reason=(
                        f"Sorry, {subject} needs write access to this repository, and "
                        f"{_describe(permission)}. Someone with write access can do it for you."
                    ),
                )
            reason = f"{permission} permission"
        else:
            reason = "read-only command open to everyone who can comment"

        restriction = config.permissions.restriction_for(command, read_only=read_only)
        if restriction is not None:
            if not await self._listed(login, restriction, team_membership):
                return Decision(
                    allowed=False,
                    reason=(
                        f"Sorry, in this repository {subject} is limited to the people and "
                        "teams listed under `permissions.restrict_to` in `.github/factory.yml`."
                    ),
                )
            reason += ", listed in permissions.restrict_to"
        return Decision(allowed=True, reason=reason)

    async def permission(
        self, repo: str, login: str, *, fetch_permission: FetchPermission | None = None
    ) -> str:
        """The user's permission on the repository, from the cache or from GitHub."""
        key = f"{self._key_prefix}{repo.lower()}:{login.lower()}"
        cached = await self._redis.get(key)
        if cached is not None:
            return cached.decode() if isinstance(cached, bytes) else str(cached)
        fetch = fetch_permission or self._fetch_permission
        if fetch is None:
            raise ValueError("no way to ask GitHub for permissions was given")
        permission = (await fetch(repo, login)).lower()
        await self._redis.set(key, permission, ex=self._ttl_s)
        return permission

    async def _listed(
        self, login: str, entries: Sequence[str], team_membership: TeamMembership | None
    ) -> bool:
        teams = []
        for entry in entries:
            if "/" in entry:
                teams.append(entry)
            elif entry.lower() == login.lower():
                return True
        # Without a way to ask GitHub, team entries cannot match: refusing is the safe side.
        if team_membership is None:
            return False
        for team in teams:
            if await self._is_member(team, login, team_membership):
                return True
        return False

    async def _is_member(self, team: str, login: str, team_membership: TeamMembership) -> bool:
        key = f"{self._key_prefix}team:{team.lower()}:{login.lower()}"
        cached = await self._redis.get(key)
        if cached is not None:
            return cached in (b"1", "1")
        org, _, slug = team.partition("/")
        member = await team_membership(org, slug, login)
        await self._redis.set(key, "1" if member else "0", ex=self._ttl_s)
        return member


def _describe(permission: str) -> str:
    if permission in ("", "none"):
        return "you have no access"
    return f"your access is `{permission}`"
