from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.contracts.config import RepoConfig
from bot.contracts.config_load import load_repo_config
from bot.permissions import LABEL, Decision, PermissionChecker

REPO = "acme/widgets"
PERMISSIONS = {"maintainer": "maintain", "admin": "admin", "dev": "write", "reader": "read"}


class FakeGitHub:
    """Stands in for GitHub's collaborator-permission and team-membership endpoints."""

    def __init__(self, teams: dict[str, set[str]] | None = None) -> None:
        self.permission_calls: list[tuple[str, str]] = []
        self.team_calls: list[tuple[str, str, str]] = []
        self.teams = teams or {}

    async def fetch_permission(self, repo: str, login: str) -> str:
        self.permission_calls.append((repo, login))
        return PERMISSIONS.get(login.lower(), "none")  # logins ignore case

    async def team_membership(self, org: str, slug: str, login: str) -> bool:
        self.team_calls.append((org, slug, login))
        return login in self.teams.get(f"{org}/{slug}", set())


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis(host="127.0.0.1", port=6379, db=11)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    key_prefix = f"test:perm:{uuid.uuid4().hex}:"
    yield key_prefix
    keys = [key async for key in redis.scan_iter(match=f"{key_prefix}*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
def github() -> FakeGitHub:
    return FakeGitHub(teams={"acme/release": {"dev"}})


@pytest.fixture
def checker(github: FakeGitHub, redis: Redis, prefix: str) -> PermissionChecker:
    return PermissionChecker(github.fetch_permission, redis=redis, key_prefix=prefix)


DEFAULTS = RepoConfig()


async def test_outsider_is_refused_a_mutating_command_politely(checker: PermissionChecker) -> None:
    decision = await checker.decide(REPO, "stranger", "User", "implement", DEFAULTS)
    assert not decision.allowed and decision.notify
    assert "`/factory implement` needs write access" in decision.reason
    assert decision.reason.startswith("Sorry")


async def test_reader_is_refused_and_told_their_access(checker: PermissionChecker) -> None:
    decision = await checker.decide(REPO, "reader", "User", "plan", DEFAULTS)
    assert not decision.allowed
    assert "`read`" in decision.reason


@pytest.mark.parametrize("login", ["maintainer", "admin", "dev"])
async def test_write_maintain_and_admin_may_mutate(checker: PermissionChecker, login: str) -> None:
    decision = await checker.decide(REPO, login, "User", "implement", DEFAULTS)
    assert decision.allowed


@pytest.mark.parametrize(
    ("login", "sender_type"),
    [("dependabot[bot]", "Bot"), ("agent-factory[bot]", "User"), ("renovate", "Bot")],
)
async def test_bots_never_trigger_and_get_no_reply(
    checker: PermissionChecker, github: FakeGitHub, login: str, sender_type: str
) -> None:
    for command in ("implement", "help", LABEL):
        decision = await checker.decide(REPO, login, sender_type, command, DEFAULTS)
        assert decision == Decision(allowed=False, reason="bot", notify=False)
    assert github.permission_calls == []


async def test_read_only_commands_are_open_without_asking_github(
    checker: PermissionChecker, github: FakeGitHub
) -> None:
    for command in ("help", "status", "ask", "config"):
        decision = await checker.decide(REPO, "stranger", "User", command, DEFAULTS)
        assert decision.allowed, command
    assert github.permission_calls == []


async def test_config_can_close_read_only_commands(checker: PermissionChecker) -> None:
    config = load_repo_config("permissions:\n  read_only_open: false\n").config
    assert not (await checker.decide(REPO, "stranger", "User", "ask", config)).allowed
    assert (await checker.decide(REPO, "dev", "User", "ask", config)).allowed


async def test_trigger_label_needs_write(checker: PermissionChecker) -> None:
    config = load_repo_config("trigger_label: ai-please\n").config
    refused = await checker.decide(REPO, "reader", "User", LABEL, config)
    assert not refused.allowed
    assert "Adding the `ai-please` label needs write access" in refused.reason
    assert (await checker.decide(REPO, "maintainer", "User", LABEL, config)).allowed


async def test_config_narrows_a_command_to_listed_users(checker: PermissionChecker) -> None:
    config = load_repo_config("permissions:\n  restrict_to:\n    deploy: ['@Admin']\n").config
    admin = await checker.decide(REPO, "admin", "User", "deploy", config)
    maintainer = await checker.decide(REPO, "maintainer", "User", "deploy", config)
    assert admin.allowed
    assert not maintainer.allowed
    assert "limited to the people and teams listed" in maintainer.reason
    # Other mutating commands are untouched by the deploy restriction.
    assert (await checker.decide(REPO, "maintainer", "User", "implement", config)).allowed


async def test_narrowing_never_widens_past_write(checker: PermissionChecker) -> None:
    config = load_repo_config("permissions:\n  restrict_to:\n    implement: [reader]\n").config
    assert not (await checker.decide(REPO, "reader", "User", "implement", config)).allowed


async def test_group_restriction_and_command_entry_precedence(checker: PermissionChecker) -> None:
    config = load_repo_config(
        "permissions:\n  restrict_to:\n    mutating: [maintainer]\n    retry: [dev]\n"
    ).config
    assert (await checker.decide(REPO, "maintainer", "User", "plan", config)).allowed
    assert not (await checker.decide(REPO, "dev", "User", "plan", config)).allowed
    assert (await checker.decide(REPO, "dev", "User", "retry", config)).allowed
    assert not (await checker.decide(REPO, "maintainer", "User", "retry", config)).allowed
    # The trigger label falls back to the mutating group.
    assert not (await checker.decide(REPO, "dev", "User", LABEL, config)).allowed


async def test_team_entries_use_the_membership_callable_and_cache_it(
    checker: PermissionChecker, github: FakeGitHub
) -> None:
    config = load_repo_config("permissions:\n  restrict_to:\n    deploy: [acme/release]\n").config
    member = github.team_membership
    assert (
        await checker.decide(REPO, "dev", "User", "deploy", config, team_membership=member)
    ).allowed
    assert (
        await checker.decide(REPO, "dev", "User", "deploy", config, team_membership=member)
    ).allowed
    assert github.team_calls == [("acme", "release", "dev")]
    outsider = await checker.decide(REPO, "admin", "User", "deploy", config, team_membership=member)
    assert not outsider.allowed
    # Without a way to check teams, team entries cannot match.
    assert not (await checker.decide(REPO, "dev", "User", "deploy", config)).allowed


async def test_permission_is_cached_in_redis(
    checker: PermissionChecker, github: FakeGitHub, redis: Redis, prefix: str
) -> None:
    assert (await checker.decide(REPO, "Dev", "User", "implement", DEFAULTS)).allowed
    assert (await checker.decide(REPO, "dev", "User", "plan", DEFAULTS)).allowed
    assert github.permission_calls == [(REPO, "Dev")]
    key = f"{prefix}{REPO}:dev"
    assert await redis.get(key) == b"write"
    assert 0 < await redis.ttl(key) <= 60


async def test_cache_expiry_asks_github_again(
    github: FakeGitHub, redis: Redis, prefix: str
) -> None:
    checker = PermissionChecker(github.fetch_permission, redis=redis, ttl_s=1, key_prefix=prefix)
    await checker.decide(REPO, "dev", "User", "implement", DEFAULTS)
    await asyncio.sleep(1.1)
    await checker.decide(REPO, "dev", "User", "implement", DEFAULTS)
    assert len(github.permission_calls) == 2


async def test_unknown_command_is_a_programming_error(checker: PermissionChecker) -> None:
    with pytest.raises(ValueError):
        await checker.decide(REPO, "dev", "User", "frobnicate", DEFAULTS)
