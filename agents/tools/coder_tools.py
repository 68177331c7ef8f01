"""CoderTools: the coder agent's tools, dispatched by name, never raising for bad input."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.sandbox import CommandResult, Sandbox
from agents.tools import files
from agents.tools.definitions import TOOL_NAMES, tool_definitions
from agents.tools.errors import ToolInputError
from agents.tools.paths import WorkspacePaths
from agents.tools.search import search_text
from agents.tools.symbols import find_symbol
from agents.untrusted import conceal

logger = logging.getLogger(__name__)

# What run_command hands back to the model, per stream: the sandbox already bounds what it keeps,
# this bounds what goes into the conversation.
DEFAULT_COMMAND_OUTPUT_CHARS = 20_000
# No bytecode from the model's commands: Python trusts a .pyc whose source has the same size and
# mtime second, so running the tests, editing a line in the same second and running them again
# (or the validation gates) would silently execute the old code.
COMMAND_ENV: Mapping[str, str] = {"PYTHONDONTWRITEBYTECODE": "1"}

_Handler = Callable[[Mapping[str, Any]], Awaitable["ToolResult"]]


@dataclass(frozen=True)
class ToolResult:
    content: str
    is_error: bool = False
    finished: bool = False


class CoderTools:
    """The tools a coder agent uses on one checked-out repository.

    Every path is confined to `workdir`; writes to `protected_paths` (glob patterns from the
    repository's configuration) and to `.git/**` are refused; commands run in `sandbox`.
    """

    def __init__(
        self,
        workdir: Path,
        sandbox: Sandbox,
        *,
        protected_paths: Sequence[str] = (),
        command_timeout_s: float = 300,
        command_output_chars: int = DEFAULT_COMMAND_OUTPUT_CHARS,
    ) -> None:
        self.paths = WorkspacePaths(workdir, protected_paths)
        self.sandbox = sandbox
        self.command_timeout_s = command_timeout_s
        self.command_output_chars = command_output_chars
        self._handlers: dict[str, _Handler] = {
            "list_files": self._list_files,
            "read_file": self._read_file,
            "search": self._search,
            "find_symbol": self._find_symbol,
            "create_file": self._create_file,
            "edit_file": self._edit_file,
            "run_command": self._run_command,
            "finish": self._finish,
        }

    def definitions(self) -> list[dict[str, Any]]:
        return tool_definitions()

    async def call(self, name: str, tool_input: Mapping[str, Any]) -> ToolResult:
        handler = self._handlers.get(name)
        if handler is None:
            return ToolResult(
                f"unknown tool {name!r}; available tools: {', '.join(TOOL_NAMES)}", is_error=True
            )
        if not isinstance(tool_input, Mapping):
            return ToolResult(f"{name}: input must be a JSON object", is_error=True)
        try:
            return await handler(tool_input)
        except ToolInputError as exc:
            return ToolResult(f"{name}: {exc}", is_error=True)
        except OSError as exc:
            # Permission denied, disk full, a file vanishing mid-read: the model can adapt to these.
            logger.info("tool %s failed: %s", name, exc)
            return ToolResult(f"{name}: {exc.strerror or exc}", is_error=True)

    async def _list_files(self, tool_input: Mapping[str, Any]) -> ToolResult:
        args = _Args(tool_input, {"path", "depth"})
        path = args.string("path", default=".")
        depth = args.integer("depth", default=2, minimum=1, maximum=10)
        return ToolResult(await asyncio.to_thread(files.list_files, self.paths, path, depth))

    async def _read_file(self, tool_input: Mapping[str, Any]) -> ToolResult:
        args = _Args(tool_input, {"path", "start_line", "max_lines"})
        path = args.string("path")
        start = args.integer("start_line", default=1, minimum=1)
        count = args.integer("max_lines", default=200, minimum=1, maximum=2000)
        return ToolResult(files.read_file(self.paths, path, start, count))

    async def _search(self, tool_input: Mapping[str, Any]) -> ToolResult:
        args = _Args(tool_input, {"pattern", "path", "glob"})
        pattern = args.string("pattern")
        path = args.string("path", default=".")
        glob = args.optional_string("glob")
        return ToolResult(await search_text(self.paths, self.sandbox, pattern, path, glob))

    async def _find_symbol(self, tool_input: Mapping[str, Any]) -> ToolResult:
        args = _Args(tool_input, {"name"})
        name = args.string("name")
        return ToolResult(await asyncio.to_thread(find_symbol, self.paths, name))

    async def _create_file(self, tool_input: Mapping[str, Any]) -> ToolResult:
        args = _Args(tool_input, {"path", "content", "overwrite"})
        path = args.string("path")
        content = conceal(args.string("content", allow_empty=True))
        overwrite = args.boolean("overwrite", default=False)
        return ToolResult(files.create_file(self.paths, path, content, overwrite))

    async def _edit_file(self, tool_input: Mapping[str, Any]) -> ToolResult:
        args = _Args(tool_input, {"path", "old_text", "new_text"})
        path = args.string("path")
        old_text = conceal(args.string("old_text", allow_empty=True))
        new_text = conceal(args.string("new_text", allow_empty=True))
        return ToolResult(files.edit_file(self.paths, path, old_text, new_text))

    async def _run_command(self, tool_input: Mapping[str, Any]) -> ToolResult:
        args = _Args(tool_input, {"command", "timeout_s"})
        command = args.string("command")
        requested = args.number("timeout_s", default=self.command_timeout_s, minimum=1)
        timeout_s = min(requested, self.command_timeout_s)
        result = await self.sandbox.run(
            command, cwd=self.paths.root, timeout_s=timeout_s, env=COMMAND_ENV
        )
        return ToolResult(render_command_result(result, timeout_s, self.command_output_chars))

    async def _finish(self, tool_input: Mapping[str, Any]) -> ToolResult:
        args = _Args(tool_input, {"summary"})
        return ToolResult(args.string("summary"), finished=True)


def render_command_result(result: CommandResult, timeout_s: float, limit: int) -> str:
    if result.timed_out:
        status = f"timed out after {timeout_s:g}s and was killed"
    else:
        status = f"exit code {result.exit_code}"
    parts = [f"$ {result.command}", f"[{status}; {result.duration_s:.1f}s]"]
    for label, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        if text:
            parts.append(f"--- {label} ---\n{_head_tail(text, limit)}")
    if not result.stdout and not result.stderr:
        parts.append("(no output)")
    return "\n".join(parts)


def _head_tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text.rstrip("\n")
    half = limit // 2
    omitted = len(text) - 2 * half
    return f"{text[:half]}\n[... {omitted} characters omitted ...]\n{text[-half:]}".rstrip("\n")


class _Args:
    """Typed access to one tool call's input, with messages the model can act on."""

    def __init__(self, tool_input: Mapping[str, Any], allowed: set[str]) -> None:
        unknown = sorted(set(tool_input) - allowed)
        if unknown:
            accepted = ", ".join(sorted(allowed))
            raise ToolInputError(
                f"unexpected argument(s) {', '.join(unknown)}; accepted: {accepted}"
            )
        self.input = tool_input

    def string(self, key: str, *, default: str | None = None, allow_empty: bool = False) -> str:
        value = self.input.get(key, default)
        if value is None:
            raise ToolInputError(f"missing required argument {key!r}")
        if not isinstance(value, str):
            raise ToolInputError(f"argument {key!r} must be a string, got {type(value).__name__}")
        if not allow_empty and not value.strip():
            raise ToolInputError(f"argument {key!r} must not be empty")
        return value

    def optional_string(self, key: str) -> str | None:
        value = self.input.get(key)
        if value is None or value == "":
            return None
        return self.string(key)

    def integer(self, key: str, *, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self.input.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ToolInputError(f"argument {key!r} must be an integer, got {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ToolInputError(f"argument {key!r} must be {bound}, got {value}")
        return value

    def number(self, key: str, *, default: float, minimum: float) -> float:
        value = self.input.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ToolInputError(f"argument {key!r} must be a number, got {value!r}")
        if value < minimum:
            raise ToolInputError(f"argument {key!r} must be >= {minimum:g}, got {value}")
        return float(value)

    def boolean(self, key: str, *, default: bool) -> bool:
        value = self.input.get(key, default)
        if not isinstance(value, bool):
            raise ToolInputError(f"argument {key!r} must be true or false, got {value!r}")
        return value
