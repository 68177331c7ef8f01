"""What is wrong with a `.github/factory.yml`, said precisely: every problem with its setting
path, the file it came from and its line, rendered as the one comment the bot posts."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from bot.contracts.config import RepoConfig

SOURCE_DEFAULT = "default"
SOURCE_ORG = "org .github repo"
SOURCE_REPO = ".github/factory.yml"


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
            value = inline_code(show_value(problem.value)) if problem.has_value else ""
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
                (
                    f"The Agent Factory configuration could not be used "
                    f"({count} problem{'s' if count != 1 else ''}), so **nothing runs in this "
                    f"repository until it is fixed**. The configuration is read from `{path}` on "
                    f"the default branch, laid over the organisation default if there is one."
                ),
                "",
                *rows,
                "",
                (
                    "Once the fix is on the default branch, the next command or label picks it up. "
                    "`docs/factory.yml.example` in Agent Factory lists every setting."
                ),
            ]
        )


def schema_problem(
    error: Any,
    org_data: Mapping[str, Any],
    repo_data: Mapping[str, Any],
    texts: Mapping[str, str],
) -> ConfigProblem:
    parts = tuple(part for part in error["loc"] if part != "[key]")
    is_key_error = "[key]" in error["loc"]
    source = value_source(parts, org_data, repo_data, nearest=True)
    if error["type"] == "extra_forbidden":
        message = _unknown_setting_message(parts)
    elif error["type"] == "value_error":
        message = str(error["ctx"]["error"])
    else:
        message = error["msg"]
    line, column = locate(
        texts.get(source, ""), parts, key=is_key_error or (error["type"] == "extra_forbidden")
    )
    return ConfigProblem(
        path=dotted(parts),
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


def value_source(
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
        found = (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and part < len(data)
        )
        if not found:
            break
        data = data[part]
        depth += 1
    return depth


def locate(
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


def dotted(parts: tuple[str | int, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def show_value(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def inline_code(text: str, limit: int = 120) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _problem_summary(problem: ConfigProblem) -> str:
    where = f" (line {problem.line})" if problem.line is not None else ""
    return f"{problem.source}: {problem.path or 'file'}: {problem.message}{where}"
