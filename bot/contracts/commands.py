"""ChatOps commands: parsing `/factory <command>` lines, the help table and reply formatting.

A command is a line of an issue comment, pull-request comment or review comment that starts
with `/factory` (up to three leading spaces allowed, as Markdown allows for a paragraph).
`/factory` and the command name are case-insensitive; the arguments are the rest of that line,
kept as written. Several commands in one comment are returned in order of appearance.

Lines that a reader does not see as plain text are never commands, so that quoting, documenting
or replying to a command can never trigger it again:

- lines inside fenced code blocks (``` or ~~~, closed by a fence of the same character at least
  as long; an unclosed fence runs to the end of the comment),
- block-quoted lines (starting with `>`, and a line straight after one, which Markdown shows
  inside the quote), which is how replies show the command they answer,
- lines indented by four or more spaces or a tab (Markdown's indented code),
- lines inside HTML comments (invisible in the rendered comment).

This module is pure: no GitHub, no Redis. Permission checks live in `bot.permissions`; running
commands is the coordinator's job.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from bot.contracts import markers

COMMAND_PREFIX = "/factory"
REPLY_MARKER = markers.REPLY

# Stages whose agents may not exist yet or may be switched off in `.github/factory.yml`.
GATED_STAGES: frozenset[str] = frozenset({"review", "test", "deploy"})

_COMMAND_LINE = re.compile(r"^ {0,3}/factory(?=\s|$)(?P<rest>.*)$", re.IGNORECASE)
_OPENING_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_WHITESPACE = re.compile(r"\s+")
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class Args(Enum):
    """Whether a command takes arguments (the rest of its line)."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str
    summary: str
    read_only: bool
    args: Args
    # The stage that must be available for the command to run; None means always available.
    stage: str | None = None

    @property
    def mutating(self) -> bool:
        return not self.read_only

    def available(self, available_stages: Collection[str]) -> bool:
        return self.stage is None or self.stage in available_stages


def _specs(*specs: CommandSpec) -> Mapping[str, CommandSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


COMMANDS: Mapping[str, CommandSpec] = _specs(
    CommandSpec("help", "help", "Show this list of commands.", read_only=True, args=Args.NONE),
    CommandSpec(
        "status",
        "status",
        "Show the current stage, what has been spent so far and links to the work.",
        read_only=True,
        args=Args.NONE,
    ),
    CommandSpec(
        "plan",
        "plan [extra guidance]",
        "Write the implementation plan again, taking the guidance into account.",
        read_only=False,
        args=Args.OPTIONAL,
    ),
    CommandSpec(
        "approve",
        "approve",
        "Approve the current plan so implementation can start.",
        read_only=False,
        args=Args.NONE,
    ),
    CommandSpec(
        "implement",
        "implement",
        "Implement the plan and open or update the pull request.",
        read_only=False,
        args=Args.NONE,
    ),
    CommandSpec(
        "revise",
        "revise [guidance]",
        "Revise the pull request following the guidance and the open review comments.",
        read_only=False,
        args=Args.OPTIONAL,
    ),
    CommandSpec(
        "review",
        "review",
        "Review the pull request and post the findings.",
        read_only=False,
        args=Args.NONE,
        stage="review",
    ),
    CommandSpec(
        "test",
        "test",
        "Run the validation gates and write missing tests for the pull request.",
        read_only=False,
        args=Args.NONE,
        stage="test",
    ),
    CommandSpec(
        "deploy",
        "deploy [environment]",
        "Run the deploy workflow for the environment (the configured default if omitted).",
        read_only=False,
        args=Args.OPTIONAL,
        stage="deploy",
    ),
    CommandSpec(
        "retry", "retry", "Retry the last step that failed.", read_only=False, args=Args.NONE
    ),
    CommandSpec(
        "cancel",
        "cancel",
        "Cancel the work in progress on this issue or pull request.",
        read_only=False,
        args=Args.NONE,
    ),
    CommandSpec(
        "ask",
        "ask <question>",
        "Answer a question about the repository or the work in progress. Changes nothing.",
        read_only=True,
        args=Args.REQUIRED,
    ),
    CommandSpec(
        "config",
        "config",
        "Show the effective configuration and where each value comes from.",
        read_only=True,
        args=Args.NONE,
    ),
)


@dataclass(frozen=True)
class ParsedCommand:
    name: str
    args: str
    raw_line: str
    line_no: int

    @property
    def spec(self) -> CommandSpec:
        return COMMANDS[self.name]

    @property
    def read_only(self) -> bool:
        return self.spec.read_only

    @property
    def mutating(self) -> bool:
        return self.spec.mutating

    def available(self, available_stages: Collection[str]) -> bool:
        return self.spec.available(available_stages)


@dataclass(frozen=True)
class CommandError:
    line: str
    message: str
    line_no: int

    @property
    def raw_line(self) -> str:
        """The offending line, named as on ParsedCommand so replies can quote either."""
        return self.line

    def reply_text(self, available_stages: Collection[str], *, read_only_open: bool = True) -> str:
        """The message followed by the help table, ready for `format_reply`."""
        help_table = help_text(available_stages, read_only_open=read_only_open)
        return f"{self.message}\n\n{help_table}"


def stage_unavailable_message(command: ParsedCommand) -> str:
    return (
        f"`{COMMAND_PREFIX} {command.name}` is not available in this repository yet: "
        f"the {command.spec.stage or command.name} stage is not enabled. Nothing was done."
    )


def parse_commands(body: str) -> list[ParsedCommand | CommandError]:
    """Every `/factory` line of a comment body, in order, parsed or explained as an error."""
    results: list[ParsedCommand | CommandError] = []
    for index, match in _command_lines(body):
        results.append(_parse_line(match, index + 1))
    return results


def help_text(
    available_stages: Collection[str] = frozenset(), *, read_only_open: bool = True
) -> str:
    """A Markdown table of the commands; stages not in `available_stages` are marked.

    `read_only_open` mirrors the repository setting that lets anyone who can comment use the
    read-only commands.
    """
    open_to = "Anyone who can comment" if read_only_open else "Write access"
    rows = [
        "| Command | What it does | Who may use it |",
        "| --- | --- | --- |",
    ]
    for spec in COMMANDS.values():
        summary = spec.summary
        if not spec.available(available_stages):
            summary = f"*Not available in this repository yet.* {summary}"
        who = open_to if spec.read_only else "Write access"
        rows.append(f"| `{COMMAND_PREFIX} {spec.usage}` | {summary} | {who} |")
    return "\n".join(
        [
            "**Agent Factory commands**",
            "",
            *rows,
            "",
            (
                "Put each command at the start of its own line; arguments are the rest of that "
                "line. Several commands in one comment run in order. Lines in code blocks or "
                "quotes are ignored. The repository's `.github/factory.yml` may restrict who "
                "may use each command."
            ),
        ]
    )


def format_reply(user: str, command_line: str, message: str) -> str:
    """A Prow-style reply: `@user: message`, then the command quoted in a collapsed block.

    The quoted command and any command-looking line in the message are rendered so that
    `parse_commands` finds nothing in the reply: the bot can never trigger itself.
    """
    quoted = "\n".join(
        f"> {html.escape(line, quote=False)}" for line in (command_line.splitlines() or [""])
    )
    # Neutralised as a whole: a fence or comment opened in the message changes how later
    # lines are read, so the message cannot be made safe on its own.
    return _neutralise(
        "\n".join(
            [
                REPLY_MARKER,
                f"@{user}: {message}",
                "",
                "<details>",
                "<summary>In response to</summary>",
                "",
                quoted,
                "",
                "</details>",
            ]
        )
    )


def is_factory_reply(body: str) -> bool:
    return REPLY_MARKER in body


def _parse_line(match: re.Match[str], line_no: int) -> ParsedCommand | CommandError:
    line = match.string.strip()
    name, _, args = _WHITESPACE.sub(" ", match.group("rest").strip(), count=1).partition(" ")
    name = name.lower()
    args = args.strip()
    if not name:
        return CommandError(line, f"`{COMMAND_PREFIX}` needs a command.", line_no)
    spec = COMMANDS.get(name)
    if spec is None:
        return CommandError(line, f"I don't know the command `{_code_safe(name)}`.", line_no)
    if spec.args is Args.NONE and args:
        return CommandError(line, f"`{COMMAND_PREFIX} {name}` takes no arguments.", line_no)
    if spec.args is Args.REQUIRED and not args:
        return CommandError(line, f"`{COMMAND_PREFIX} {spec.usage}` needs an argument.", line_no)
    if name == "deploy" and args and not _ENVIRONMENT.match(args):
        return CommandError(
            line,
            f"`{COMMAND_PREFIX} deploy` takes one environment name (letters, digits, `.`, "
            f"`_` or `-`), not `{_code_safe(args)}`.",
            line_no,
        )
    return ParsedCommand(name=name, args=args, raw_line=line, line_no=line_no)


def _command_lines(body: str) -> Iterator[tuple[int, re.Match[str]]]:
    """(index, match) of every line a reader sees as plain text and that starts a command."""
    fence: str | None = None
    in_html_comment = False
    in_quote = False
    for index, line in enumerate(body.splitlines()):
        if fence is not None:
            if _closes_fence(line, fence):
                fence = None
            continue
        if in_html_comment:
            in_html_comment = "-->" not in line
            continue
        if not line.strip():
            in_quote = False
            continue
        opening = _OPENING_FENCE.match(line)
        if opening is not None and not (
            opening.group("fence")[0] == "`" and "`" in opening.group("info")
        ):
            fence = opening.group("fence")
            in_quote = False
            continue
        # A plain line straight after a quoted one is Markdown's "lazy continuation": it is
        # shown inside the quote.
        in_quote = in_quote or line.lstrip(" ").startswith(">")
        command = None if in_quote else _COMMAND_LINE.match(line)
        if command is not None:
            yield index, command
        in_html_comment = _opens_html_comment(line)


def _closes_fence(line: str, fence: str) -> bool:
    stripped = line.strip()
    indent = len(line) - len(line.lstrip(" "))
    return indent <= 3 and len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _opens_html_comment(line: str) -> bool:
    start = line.rfind("<!--")
    return start != -1 and "-->" not in line[start + 4 :]


def _neutralise(text: str) -> str:
    """Render command-looking lines with `&#47;` for `/`: shown the same, never parsed."""
    lines = text.splitlines()
    for index, match in _command_lines(text):
        line = match.string
        slash = line.index("/")
        lines[index] = f"{line[:slash]}&#47;{line[slash + 1 :]}"
    return "\n".join(lines)


def _code_safe(text: str, limit: int = 60) -> str:
    """User text shown inside inline code: no backticks to break out, and kept short."""
    cleaned = text.replace("`", "'")
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
