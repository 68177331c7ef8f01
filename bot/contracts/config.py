"""`.github/factory.yml`: the schema of the per-repository configuration.

Every setting is optional; settings neither the repository file nor the organisation default
gives take the defaults documented here (see `docs/factory.yml.example`). Loading, merging and
explaining problems is in :mod:`bot.contracts.config_load`.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from bot.contracts.commands import COMMANDS

# Command groups usable under `permissions.restrict_to` besides the command names themselves.
PERMISSION_GROUPS: frozenset[str] = frozenset({"read_only", "mutating", "label"})


_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_TEAM = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_TEAM_SLUG = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/)?[A-Za-z0-9._-]{1,100}$")
_WORKFLOW_FILE = re.compile(r"^[A-Za-z0-9._-]+\.ya?ml$")
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _login(value: str) -> str:
    login = value.removeprefix("@")
    if not _LOGIN.match(login):
        raise ValueError(f"{value!r} is not a GitHub user name")
    return login


def _principal(value: str) -> str:
    principal = value.removeprefix("@")
    if not (_LOGIN.match(principal) or _TEAM.match(principal)):
        raise ValueError(f"{value!r} is neither a GitHub user name nor a team as `org/team-slug`")
    return principal


def _team_slug(value: str) -> str:
    team = value.removeprefix("@")
    if not _TEAM_SLUG.match(team):
        raise ValueError(f"{value!r} is not a team slug (`team-slug` or `org/team-slug`)")
    return team


def _command_key(value: str) -> str:
    key = value.lower()
    if key not in COMMANDS and key not in PERMISSION_GROUPS:
        known = ", ".join(sorted([*COMMANDS, *PERMISSION_GROUPS]))
        raise ValueError(f"{value!r} is not a command or group; use one of: {known}")
    return key


def _environment(value: str) -> str:
    if not _ENVIRONMENT.match(value):
        raise ValueError(f"{value!r} is not an environment name (letters, digits, . _ -)")
    return value


NonEmptyStr = Annotated[str, Field(min_length=1)]
Login = Annotated[str, AfterValidator(_login)]
Principal = Annotated[str, AfterValidator(_principal)]
TeamSlug = Annotated[str, AfterValidator(_team_slug)]
CommandKey = Annotated[str, AfterValidator(_command_key)]
Environment = Annotated[str, AfterValidator(_environment)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budgets(_Section):
    """Limits for one run of an agent; whichever is reached first stops it."""

    max_usd: float = Field(default=5.0, gt=0)
    max_tokens: int = Field(default=2_000_000, gt=0)
    max_turns: int = Field(default=60, gt=0)
    max_minutes: int = Field(default=30, gt=0)


class Deploy(_Section):
    """`/factory deploy` dispatches `workflow` (a file in `.github/workflows`)."""

    workflow: str | None = None
    environments: list[Environment] = Field(default_factory=list)
    # None: the first of `environments`.
    default_environment: Environment | None = None
    # None: the pull request's head branch, or the default branch outside a pull request.
    ref: NonEmptyStr | None = None

    @field_validator("workflow")
    @classmethod
    def _workflow_file(cls, value: str | None) -> str | None:
        if value is not None and not _WORKFLOW_FILE.match(value):
            raise ValueError(
                f"{value!r} is not a workflow file name such as `deploy.yml` "
                "(the file must be in .github/workflows)"
            )
        return value

    @field_validator("default_environment")
    @classmethod
    def _listed(cls, value: str | None, info: ValidationInfo) -> str | None:
        environments = info.data.get("environments") or []
        if value is not None and environments and value not in environments:
            raise ValueError(f"{value!r} is not one of the listed environments {environments}")
        return value

    def resolve_environment(self, requested: str | None) -> str:
        """The environment `/factory deploy [requested]` targets; ValueError says why not."""
        name = requested or self.default_environment
        if name is None and self.environments:
            name = self.environments[0]
        if name is None:
            raise ValueError(
                "Name the environment to deploy to, e.g. `/factory deploy staging`, or set "
                "`deploy.default_environment` in `.github/factory.yml`."
            )
        if self.environments and name not in self.environments:
            listed = ", ".join(f"`{env}`" for env in self.environments)
            raise ValueError(f"`{name}` is not a configured environment; use one of {listed}.")
        return name


class Reviewers(_Section):
    """Reviewers requested on every pull request the bot opens."""

    users: list[Login] = Field(default_factory=list)
    # Team slugs of the repository's organisation; an `org/` prefix is accepted and ignored.
    teams: list[TeamSlug] = Field(default_factory=list)

    @property
    def team_slugs(self) -> list[str]:
        return [team.rpartition("/")[2] for team in self.teams]


class Permissions(_Section):
    """Who may do what, on top of GitHub's own permissions (see `bot.permissions`)."""

    # Read-only commands (help, status, ask, config) are open to anyone who can comment.
    read_only_open: bool = True
    # Narrow a command or a group (`read_only`, `mutating`, `label`: adding the trigger label)
    # to these users and `org/team-slug` teams. An empty list lets nobody in.
    restrict_to: dict[CommandKey, list[Principal]] = Field(default_factory=dict)

    def restriction_for(self, command: str, *, read_only: bool) -> list[str] | None:
        """The list that narrows `command` (a command name or "label"), or None if open.

        A command's own entry wins over its group; the trigger label falls back to `mutating`.
        """
        if command in self.restrict_to:
            return self.restrict_to[command]
        group = "read_only" if read_only else "mutating"
        return self.restrict_to.get(group)


class Stages(_Section):
    """Switch optional stages off for this repository."""

    review: bool = True
    test: bool = True
    deploy: bool = True


class RepoConfig(_Section):
    """The whole `.github/factory.yml`. Every setting is optional."""

    version: Literal[1] = 1
    trigger_label: str = Field(default="factory", min_length=1, max_length=50)
    # None: the bot's default model.
    model: NonEmptyStr | None = None
    budgets: Budgets = Field(default_factory=Budgets)
    # Shell commands that must all pass before a pull request is marked ready.
    validation_gates: list[NonEmptyStr] = Field(default_factory=list)
    # Shell commands that prepare the checkout (install dependencies) before the coder starts:
    # run in order from the repository root, the only commands allowed to reach the network.
    setup: list[NonEmptyStr] = Field(default_factory=list)
    # Wall-clock seconds all setup commands together may take; they count against the step's
    # own time limit, so an hour is the most that makes sense.
    setup_timeout_s: int = Field(default=900, ge=1, le=3600)
    deploy: Deploy = Field(default_factory=Deploy)
    require_plan_approval: bool = False
    # Globs of paths the bot must not change. `**` crosses directories, `*` does not; a pattern
    # without `/` matches a file name at any depth; a trailing `/` means everything below.
    protected_paths: list[NonEmptyStr] = Field(default_factory=lambda: [".github/workflows/**"])
    reviewers: Reviewers = Field(default_factory=Reviewers)
    permissions: Permissions = Field(default_factory=Permissions)
    # Review/revise rounds before the bot stops and asks a human.
    max_rounds: int = Field(default=3, ge=1)
    stages: Stages = Field(default_factory=Stages)

    def enabled_stages(self) -> frozenset[str]:
        """Optional stages this repository allows; deploy also needs a workflow."""
        enabled = set()
        if self.stages.review:
            enabled.add("review")
        if self.stages.test:
            enabled.add("test")
        if self.stages.deploy and self.deploy.workflow is not None:
            enabled.add("deploy")
        return frozenset(enabled)

    def is_protected(self, path: str) -> bool:
        """Whether the bot must leave `path` (relative to the repository root) alone.

        A path that leaves the repository (`../x`) counts as protected.
        """
        normalised = posixpath.normpath(path.strip().replace("\\", "/").lstrip("/"))
        if normalised == ".." or normalised.startswith("../"):
            return True
        return any(_glob_regex(pattern).match(normalised) for pattern in self.protected_paths)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip().lstrip("/")
    if pattern.endswith("/"):
        pattern += "**"
    if "/" not in pattern:
        pattern = "**/" + pattern
    regex = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            regex += "(?:.*/)?"
            index += 3
        elif pattern.startswith("**", index):
            regex += ".*"
            index += 2
        elif pattern[index] == "*":
            regex += "[^/]*"
            index += 1
        elif pattern[index] == "?":
            regex += "[^/]"
            index += 1
        else:
            regex += re.escape(pattern[index])
            index += 1
    return re.compile(regex + r"\Z")
