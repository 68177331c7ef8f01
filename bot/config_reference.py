"""The settings reference, generated from ``Settings`` (printed by ``factory config``, kept in
the README between markers; a test checks they agree)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bot.settings import Settings


def env_names(name: str, field: FieldInfo) -> list[str]:
    """The environment variables a field is read from, preferred first."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [f"{Settings.model_config.get('env_prefix', '')}{name}".upper()]


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, Path) and value.is_relative_to(Path.cwd()):
            return f"`./{value.relative_to(Path.cwd())}`"
        return f"`{value}`"
    if field.default is None or field.default is PydanticUndefined:
        return "unset"
    return f"`{field.default}`"


def markdown_table() -> str:
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        variable = " or ".join(f"`{env}`" for env in env_names(name, field))
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| {variable} | {_default(field)} | {meaning} |")
    return "\n".join(rows)
