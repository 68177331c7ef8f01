"""Reading `.github/factory.yml`: validate the repository file over the organisation default.

The worker reads the file from the repository's **default branch only** (and the organisation
default from the org's `.github` repository, `.github/factory.yml` or `factory.yml`), so a pull
request can never change the bot's behaviour for itself. This module takes the texts and
returns results; it never talks to GitHub.

Merging: the organisation default is laid under the repository file. Mappings merge key by key
(the repository wins); any other value, lists included, is replaced whole.

Any problem (YAML syntax, unknown setting, wrong type or value) raises `ConfigError` listing
every problem with its setting path, and nothing runs until the file is fixed: guessing what a
broken configuration meant could spend money or touch code the owners meant to protect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from bot.contracts.config import RepoConfig
from bot.contracts.config_problems import (
    SOURCE_DEFAULT,
    SOURCE_ORG,
    SOURCE_REPO,
    ConfigError,
    ConfigProblem,
    dotted,
    inline_code,
    locate,
    schema_problem,
    show_value,
    value_source,
)

# A configuration file is a few dozen lines; these bounds stop a hostile or broken file
# (YAML alias bombs, megabytes of text) from tying up a worker.
MAX_CONFIG_CHARS = 100_000
MAX_YAML_NODES = 10_000


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
            [schema_problem(error, org_data, repo_data, texts) for error in exc.errors()]
        ) from None
    sources = {
        path: value_source(path_parts, org_data, repo_data)
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
        rows.append(f"| `{path}` | {inline_code(show_value(value))} | {shown} |")
    repo = "found" if result.repo_file_found else "not found: defaults apply"
    org = "found" if result.org_file_found else "none"
    stages = ", ".join(sorted(result.config.enabled_stages())) or "none"
    return "\n".join(
        [
            "**Agent Factory configuration in effect**",
            "",
            (
                f"Read from the default branch only, so a pull request cannot change it for "
                f"itself. `{SOURCE_REPO}`: {repo}; organisation default "
                f"(`.github` repository): {org}. Optional stages enabled: {stages}."
            ),
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
            line, column = locate(text, parts)
            problems.append(
                ConfigProblem(
                    dotted(parts),
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
            leaves.append((dotted(path), path, value))
    return leaves
