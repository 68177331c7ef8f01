"""The coder agent's tools: files, search, symbols and commands, confined to one workdir."""

from __future__ import annotations

from agents.tools.coder_tools import CoderTools, ToolResult
from agents.tools.definitions import TOOL_NAMES
from agents.tools.errors import ToolInputError
from agents.tools.paths import ALWAYS_PROTECTED, WorkspacePaths

__all__ = [
    "ALWAYS_PROTECTED",
    "TOOL_NAMES",
    "CoderTools",
    "ToolInputError",
    "ToolResult",
    "WorkspacePaths",
]
