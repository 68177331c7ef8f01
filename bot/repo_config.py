"""Per-repository configuration: the `.github/factory.yml` schema, loading, merging and errors.

The coordinator reads the file from the repository's **default branch only** (and the
organisation default from the org's `.github` repository, `.github/factory.yml` or
`factory.yml`), so a pull request can never change the bot's behaviour for itself. This module
takes the texts and returns results; it never talks to GitHub.

Merging: the organisation default is laid under the repository file. Mappings merge key by key
(the repository wins); any other value, lists included, is replaced whole. Settings neither file
gives take the documented defaults of `RepoConfig` (see `docs/factory.yml.example`).

Any problem (YAML syntax, unknown setting, wrong type or value) raises `ConfigError` listing every
problem with its setting path, and nothing runs until the file is fixed: guessing what a broken
configuration meant could spend money or touch code the owners meant to protect.
"""

from __future__ import annotations

import difflib
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from agents.commands import COMMANDS

SOURCE_DEFAULT = "default"
SOURCE_ORG = "org .github repo"
SOURCE_REPO = ".github/factory.yml"

# Command groups usable under `permissions.restrict_to` besides the command names themselves.
PERMISSION_GROUPS: frozenset[str] = frozenset({"read_only", "mutating", "label"})

# A configuration file is a few dozen lines; these bounds stop a hostile or broken file
# (YAML alias bombs, megabytes of text) from tying up a worker.
MAX_CONFIG_CHARS = 100_000
MAX_YAML_NODES = 10_000

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


@dataclass(frozen=True)
class ConfigProblem:
    path: str  # dotted setting path, `[n]` for list items; "" for the whole file
    message: str
    source: str
    value: Any = None
    has_value: bool = False
    line: int | None = None
    column: int | None = None


class ConfigError(Exception):
    """The configuration cannot be used; `problems` says exactly why."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(_problem_summary(problem) for problem in self.problems))

    def to_markdown(self, path: str = SOURCE_REPO) -> str:
        """The one comment the coordinator posts: every problem, and that nothing runs."""
        count = len(self.problems)
        rows = [
            "| Setting | Problem | Value | Where |",
            "| --- | --- | --- | --- |",
        ]
        for problem in self.problems:
            setting = f"`{problem.path}`" if problem.path else "(whole file)"
            value = _inline_code(_show(problem.value)) if problem.has_value else ""
            where = f"`{path}`" if problem.source == SOURCE_REPO else "organisation default"
            if problem.line is not None:
                where += f" line {problem.line}"
                if problem.column is not None:
                    where += f", column {problem.column}"
            rows.append(f"| {setting} | {_cell(problem.message)} | {value} | {where} |")
        return "\n".join(
            [
                "### Agent Factory configuration problem",
                "",
                f"The Agent Factory configuration could not be used "
                f"({count} problem{'s' if count != 1 else ''}), so **nothing runs in this "
                f"repository until it is fixed**. The configuration is read from `{path}` on "
                f"the default branch, laid over the organisation default if there is one.",
                "",
                *rows,
                "",
                "Once the fix is on the default branch, the next command or label picks it up. "
                "`docs/factory.yml.example` in Agent Factory lists every setting.",
            ]
        )


@dataclass(frozen=True)
class ConfigResult:
    config: RepoConfig
    # Dotted setting path -> SOURCE_DEFAULT, SOURCE_ORG or SOURCE_REPO.
    sources: Mapping[str, str] = field(default_factory=dict)
    repo_file_found: bool = False
    org_file_found: bool = False


def load_repo_config(text: str | None, *, org_default_text: str | None = None) -> ConfigResult:
    """Validate the repository file (None: no file) over the organisation default.

    Raises ConfigError listing every problem found.
    """
    problems: list[ConfigProblem] = []
    org_data = _read_yaml(org_default_text, SOURCE_ORG, problems)
    repo_data = _read_yaml(text, SOURCE_REPO, problems)
    if problems:
        raise ConfigError(problems)
    merged = _deep_merge(org_data, repo_data)
    try:
        config = RepoConfig.model_validate(merged)
    except ValidationError as exc:
        texts = {SOURCE_ORG: org_default_text or "", SOURCE_REPO: text or ""}
        raise ConfigError(
            [_schema_problem(error, org_data, repo_data, texts) for error in exc.errors()]
        ) from None
    sources = {
        path: _source(path_parts, org_data, repo_data)
        for path, path_parts, _ in _leaves(config.model_dump())
    }
    return ConfigResult(
        config=config,
        sources=sources,
        repo_file_found=text is not None,
        org_file_found=org_default_text is not None,
    )


def explain(result: ConfigResult) -> str:
    """Markdown for `/factory config`: every effective setting and where it came from."""
    rows = ["| Setting | Value | Source |", "| --- | --- | --- |"]
    for path, _, value in _leaves(result.config.model_dump()):
        source = result.sources.get(path, SOURCE_DEFAULT)
        shown = f"`{source}`" if source == SOURCE_REPO else source
        rows.append(f"| `{path}` | {_inline_code(_show(value))} | {shown} |")
    repo = "found" if result.repo_file_found else "not found: defaults apply"
    org = "found" if result.org_file_found else "none"
    stages = ", ".join(sorted(result.config.enabled_stages())) or "none"
    return "\n".join(
        [
            "**Agent Factory configuration in effect**",
            "",
            f"Read from the default branch only, so a pull request cannot change it for "
            f"itself. `{SOURCE_REPO}`: {repo}; organisation default "
            f"(`.github` repository): {org}. Optional stages enabled: {stages}.",
            "",
            *rows,
        ]
    )


def _read_yaml(text: str | None, source: str, problems: list[ConfigProblem]) -> dict[str, Any]:
    if text is None:
        return {}
    if len(text) > MAX_CONFIG_CHARS:
        problems.append(
            ConfigProblem("", f"the file is larger than {MAX_CONFIG_CHARS} characters", source)
        )
        return {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None and _node_count(root) > MAX_YAML_NODES:
            problems.append(
                ConfigProblem("", f"the file expands to more than {MAX_YAML_NODES} values", source)
            )
            return {}
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = ": ".join(part for part in (exc.context, exc.problem) if part)
        problems.append(
            ConfigProblem(
                "",
                f"YAML syntax error: {message or 'invalid YAML'}",
                source,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            )
        )
        return {}
    except yaml.YAMLError as exc:
        problems.append(ConfigProblem("", f"YAML error: {exc}", source))
        return {}
    except RecursionError:
        problems.append(ConfigProblem("", "the file is nested too deeply", source))
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(
            ConfigProblem(
                "",
                "the file must be a mapping of settings (`name: value` lines)",
                source,
                value=data,
                has_value=True,
                line=1,
            )
        )
        return {}
    key_problems = list(_non_text_keys(data, (), source, text))
    problems.extend(key_problems)
    return {} if key_problems else data


def _node_count(root: yaml.Node) -> int:
    """Nodes visited walking the tree, aliases followed: bounded, so bombs stop early."""
    count = 0
    stack: list[yaml.Node] = [root]
    while stack and count <= MAX_YAML_NODES:
        node = stack.pop()
        count += 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return count


def _non_text_keys(
    data: Mapping[Any, Any], parts: tuple[str | int, ...], source: str, text: str
) -> list[ConfigProblem]:
    problems = []
    for key, value in data.items():
        if not isinstance(key, str):
            line, column = _locate(text, parts)
            problems.append(
                ConfigProblem(
                    _dotted(parts),
                    f"setting names must be text; {key!r} is not (YAML reads unquoted "
                    "yes/no/on/off as true/false: quote the name)",
                    source,
                    value=key,
                    has_value=True,
                    line=line,
                    column=column,
                )
            )
        elif isinstance(value, dict):
            problems.extend(_non_text_keys(value, (*parts, key), source, text))
    return problems


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def _schema_problem(
    error: Any,
    org_data: Mapping[str, Any],
    repo_data: Mapping[str, Any],
    texts: Mapping[str, str],
) -> ConfigProblem:
    parts = tuple(part for part in error["loc"] if part != "[key]")
    is_key_error = "[key]" in error["loc"]
    source = _source(parts, org_data, repo_data, nearest=True)
    if error["type"] == "extra_forbidden":
        message = _unknown_setting_message(parts)
    elif error["type"] == "value_error":
        message = str(error["ctx"]["error"])
    else:
        message = error["msg"]
    line, column = _locate(
        texts.get(source, ""), parts, key=is_key_error or (error["type"] == "extra_forbidden")
    )
    return ConfigProblem(
        path=_dotted(parts),
        message=message,
        source=source,
        value=parts[-1] if is_key_error and parts else error.get("input"),
        has_value=error["type"] != "missing",
        line=line,
        column=column,
    )


def _unknown_setting_message(parts: tuple[str | int, ...]) -> str:
    allowed = _allowed_names(parts[:-1])
    name = str(parts[-1]) if parts else ""
    message = "unknown setting"
    close = difflib.get_close_matches(name, allowed, n=1)
    if close:
        message += f"; did you mean `{close[0]}`?"
    elif allowed:
        message += f"; expected one of: {', '.join(allowed)}"
    return message


def _allowed_names(parts: tuple[str | int, ...]) -> list[str]:
    """Setting names accepted at `parts` (a path to a section)."""
    model: type[BaseModel] = RepoConfig
    for part in parts:
        field_info = model.model_fields.get(str(part))
        annotation = field_info.annotation if field_info else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _source(
    parts: tuple[str | int, ...],
    org_data: Mapping[str, Any],
    repo_data: Mapping[str, Any],
    *,
    nearest: bool = False,
) -> str:
    """Which file gave the value at `parts`; with `nearest`, the file that reached deepest."""
    repo_depth = _depth(repo_data, parts)
    org_depth = _depth(org_data, parts)
    if repo_depth == len(parts) and parts:
        return SOURCE_REPO
    if org_depth == len(parts) and parts:
        return SOURCE_ORG
    if not nearest:
        return SOURCE_DEFAULT
    return SOURCE_ORG if org_depth > repo_depth else SOURCE_REPO


def _depth(data: Any, parts: tuple[str | int, ...]) -> int:
    """How many leading parts of the path exist in the parsed YAML."""
    depth = 0
    for part in parts:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            break
        depth += 1
    return depth


def _locate(
    text: str, parts: tuple[str | int, ...], *, key: bool = False
) -> tuple[int | None, int | None]:
    """1-based line and column of the value (or, with `key`, the name) at `parts`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader) if text else None
    except yaml.YAMLError:
        return None, None
    if node is None:
        return None, None
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        found: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == part:
                    found = key_node if (key and last) else value_node
                    break
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            found = node.value[part]
        if found is None:
            break
        node = found
    return node.start_mark.line + 1, node.start_mark.column + 1


def _leaves(
    data: Mapping[str, Any], parts: tuple[str, ...] = ()
) -> list[tuple[str, tuple[str, ...], Any]]:
    """(dotted path, path parts, value) of each setting; non-empty mappings are recursed."""
    leaves: list[tuple[str, tuple[str, ...], Any]] = []
    for key, value in data.items():
        path = (*parts, key)
        if isinstance(value, dict) and value:
            leaves.extend(_leaves(value, path))
        else:
            leaves.append((_dotted(path), path, value))
    return leaves


def _dotted(parts: tuple[str | int, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


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


def _show(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _inline_code(text: str, limit: int = 120) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _problem_summary(problem: ConfigProblem) -> str:
    where = f" (line {problem.line})" if problem.line is not None else ""
    return f"{problem.source}: {problem.path or 'file'}: {problem.message}{where}"
