"""The coder's tool definitions, as the Anthropic Messages API expects them.

Kept as one constant so the rendered JSON is byte-identical across calls and processes: the tool
block sits at the start of every prompt, and any change in it would invalidate the prompt cache.
"""

from __future__ import annotations

import copy
from typing import Any

_PATH_NOTE = "relative to the repository root"

_DEFINITIONS: tuple[dict[str, Any], ...] = (
    {
        "name": "list_files",
        "description": (
            "List files and directories under a directory of the repository, as an indented tree "
            "(directories end with '/'). The .git directory is never listed. Use it to get "
            "oriented before reading files."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": f"Directory {_PATH_NOTE}. Default '.'."},
                "depth": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 10,
                    "description": "How many directory levels to descend. Default 2.",
                },
            },
            "additionalProperties": False,
        },
    },
    {
        "name": "read_file",
        "description": (
            "Read a window of a text file with line numbers. Returns at most max_lines lines "
            "starting at start_line, and says how many lines remain and which start_line reads "
            "the next window."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": f"File {_PATH_NOTE}."},
                "start_line": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "First line to return (1-based). Default 1.",
                },
                "max_lines": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 2000,
                    "description": "Number of lines to return. Default 200.",
                },
            },
            "required": ["path"],
            "additionalProperties": False,
        },
    },
    {
        "name": "search",
        "description": (
            "Search file contents with a regular expression (Perl/Python-style syntax). Returns "
            "matching lines as 'path:line: text', at most 100 of them. Use glob to restrict "
            "files, e.g. '*.py' or 'src/**/*.ts'."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "Regular expression to search for."},
                "path": {
                    "type": "string",
                    "description": f"Directory or file to search, {_PATH_NOTE}. Default '.'.",
                },
                "glob": {"type": "string", "description": "Only search files matching this glob."},
            },
            "required": ["pattern"],
            "additionalProperties": False,
        },
    },
    {
        "name": "find_symbol",
        "description": (
            "Find where a class, function, method or type is defined. Accepts a bare name "
            "('parse') or a qualified one ('Parser.parse'). Python is parsed exactly; other "
            "languages (JavaScript/TypeScript, Go, Rust, Java, Kotlin, C#, Ruby, PHP, C/C++) "
            "are matched by definition patterns."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "Symbol name to look for."},
            },
            "required": ["name"],
            "additionalProperties": False,
        },
    },
    {
        "name": "create_file",
        "description": (
            "Create a new file with the given content (parent directories are created). Refuses "
            "to replace an existing file unless overwrite is true; to change part of a file use "
            "edit_file instead."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": f"File {_PATH_NOTE}."},
                "content": {"type": "string", "description": "Complete content of the file."},
                "overwrite": {
                    "type": "boolean",
                    "description": "Replace the file if it exists. Default false.",
                },
            },
            "required": ["path", "content"],
            "additionalProperties": False,
        },
    },
    {
        "name": "edit_file",
        "description": (
            "Replace one exact occurrence of old_text with new_text in a file. old_text must match "
            "the file exactly (whitespace and indentation included) and must occur exactly once; "
            "include enough surrounding lines to make it unique. Returns the edited region."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": f"File {_PATH_NOTE}."},
                "old_text": {"type": "string", "description": "Exact text to replace."},
                "new_text": {"type": "string", "description": "Text to put in its place."},
            },
            "required": ["path", "old_text", "new_text"],
            "additionalProperties": False,
        },
    },
    {
        "name": "run_command",
        "description": (
            "Run a shell command (bash) from the repository root inside an isolated sandbox: no "
            "network access, only the repository is writable, limited memory and time. Use it "
            "to run tests, linters and builds. Returns the exit code and the output (long output "
            "keeps its beginning and end)."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The shell command to run."},
                "timeout_s": {
                    "type": "number",
                    "minimum": 1,
                    "description": "Wall-clock limit in seconds (capped by the bot's limit).",
                },
            },
            "required": ["command"],
            "additionalProperties": False,
        },
    },
    {
        "name": "finish",
        "description": (
            "Call this once the task is complete (or cannot be completed), with a short summary "
            "of what was changed and how it was verified. No further tools run after it."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "summary": {
                    "type": "string",
                    "description": "What was done and how it was checked.",
                },
            },
            "required": ["summary"],
            "additionalProperties": False,
        },
    },
)

TOOL_NAMES: tuple[str, ...] = tuple(definition["name"] for definition in _DEFINITIONS)


def tool_definitions() -> list[dict[str, Any]]:
    """A fresh copy, so a caller mutating it cannot change what the next prompt sends."""
    return copy.deepcopy(list(_DEFINITIONS))
