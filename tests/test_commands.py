from __future__ import annotations

import pytest

from bot.contracts.commands import (
    COMMANDS,
    REPLY_MARKER,
    CommandError,
    ParsedCommand,
    format_reply,
    help_text,
    is_factory_reply,
    parse_commands,
    stage_unavailable_message,
)


def names(body: str) -> list[str]:
    return [c.name for c in parse_commands(body) if isinstance(c, ParsedCommand)]


def test_command_and_prefix_are_case_insensitive_and_args_kept_as_written() -> None:
    [command] = parse_commands("Thanks!\n/FACTORY Plan  Use the Redis cache, not SQLite  \n")
    assert command == ParsedCommand(
        name="plan",
        args="Use the Redis cache, not SQLite",
        raw_line="/FACTORY Plan  Use the Redis cache, not SQLite",
        line_no=2,
    )
    assert command.mutating and not command.read_only


def test_any_whitespace_separates_command_and_arguments() -> None:
    [command] = parse_commands("/factory\trevise\u00a0keep the public API")
    assert isinstance(command, ParsedCommand)
    assert (command.name, command.args) == ("revise", "keep the public API")


def test_several_commands_run_in_order_of_appearance() -> None:
    body = "/factory status\nsome prose\n/factory revise tighten the tests\n/Factory review\n"
    parsed = parse_commands(body)
    assert [(c.name, c.args, c.line_no) for c in parsed if isinstance(c, ParsedCommand)] == [
        ("status", "", 1),
        ("revise", "tighten the tests", 3),
        ("review", "", 4),
    ]


def test_only_line_starts_count() -> None:
    body = (
        "please run /factory plan\n"
        "`/factory implement`\n"
        "- /factory approve\n"
        "/factoryplan\n"
        "    /factory cancel\n"
        "   /factory retry\n"
    )
    assert names(body) == ["retry"]


@pytest.mark.parametrize(
    "body",
    [
        "```\n/factory implement\n```",
        "~~~python\n/factory implement\n~~~",
        "````\n```\n/factory implement\n````",
        "  ```\n/factory implement\n  ```",
        "```\nunclosed fence runs to the end\n/factory implement",
        "> /factory implement",
        ">/factory implement",
        "> I asked for this:\n/factory implement",
        "<!--\n/factory implement\n-->",
    ],
)
def test_code_quotes_and_html_comments_are_not_commands(body: str) -> None:
    assert parse_commands(body) == []


def test_commands_after_a_closed_fence_or_quote_count_again() -> None:
    body = (
        "```\n/factory implement\n```\n"
        "/factory plan\n"
        "> /factory cancel\n"
        "\n"
        "/factory status\n"
        "<!-- hidden -->\n"
        "/factory help\n"
    )
    assert names(body) == ["plan", "status", "help"]


def test_tilde_fence_is_not_closed_by_backticks() -> None:
    assert parse_commands("~~~\n```\n/factory implement\n~~~\n/factory test") == [
        ParsedCommand(name="test", args="", raw_line="/factory test", line_no=5)
    ]


def test_unknown_command_is_an_error_whose_reply_includes_help() -> None:
    [error] = parse_commands("/factory deplyo staging")
    assert isinstance(error, CommandError)
    assert error.line == error.raw_line == "/factory deplyo staging"
    assert error.line_no == 1
    assert "deplyo" in error.message
    reply = error.reply_text({"review"})
    assert reply.startswith(error.message)
    assert "| `/factory ask <question>` |" in reply


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("/factory ask", "needs an argument"),
        ("/factory ask   ", "needs an argument"),
        ("/factory approve looks good", "takes no arguments"),
        ("/factory deploy prod and staging", "one environment name"),
        ("/factory", "needs a command"),
    ],
)
def test_bad_arguments_are_errors(body: str, fragment: str) -> None:
    [error] = parse_commands(body)
    assert isinstance(error, CommandError)
    assert fragment in error.message


def test_ask_and_deploy_arguments() -> None:
    ask, deploy, default_deploy = parse_commands(
        "/factory ask Where is the retry logic?\n/factory deploy staging\n/factory deploy"
    )
    assert isinstance(ask, ParsedCommand) and ask.args == "Where is the retry logic?"
    assert ask.read_only
    assert isinstance(deploy, ParsedCommand) and deploy.args == "staging"
    assert isinstance(default_deploy, ParsedCommand) and default_deploy.args == ""


def test_read_only_set_and_stage_gating() -> None:
    assert {name for name, spec in COMMANDS.items() if spec.read_only} == {
        "help",
        "status",
        "ask",
        "config",
    }
    [review] = parse_commands("/factory review")
    assert isinstance(review, ParsedCommand)
    assert not review.available(set())
    assert review.available({"review"})
    assert "not available" in stage_unavailable_message(review)
    [plan] = parse_commands("/factory plan")
    assert isinstance(plan, ParsedCommand) and plan.available(set())


def test_help_lists_every_command_and_marks_unavailable_stages() -> None:
    text = help_text({"review"})
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if "`/factory" in line}
    assert len(rows) == len(COMMANDS)
    assert "Not available" in rows["`/factory test`"]
    assert "Not available" in rows["`/factory deploy [environment]`"]
    assert "Not available" not in rows["`/factory review`"]
    assert "Anyone who can comment" in rows["`/factory status`"]
    assert "Write access" in rows["`/factory implement`"]
    closed = help_text({"review"}, read_only_open=False)
    assert "Anyone who can comment" not in closed


def test_help_text_does_not_parse_as_commands() -> None:
    assert parse_commands(help_text(set())) == []


def test_reply_mentions_user_quotes_command_and_never_reparses() -> None:
    reply = format_reply("octocat", "/factory implement", "Started implementing.")
    assert reply.splitlines()[1] == "@octocat: Started implementing."
    assert "<details>" in reply and "> /factory implement" in reply
    assert is_factory_reply(reply) and REPLY_MARKER in reply
    assert parse_commands(reply) == []


@pytest.mark.parametrize(
    "message",
    [
        "Here is how:\n/factory implement",
        "```\nopened fence\n/factory implement",
        "line\n\n/factory cancel\n   /factory retry",
        "<!-- unclosed\n/factory plan",
    ],
)
def test_reply_with_command_looking_message_never_reparses(message: str) -> None:
    reply = format_reply("octocat", "/factory plan <b>x</b>", message)
    assert parse_commands(reply) == []
    assert "<b>" not in reply  # the quoted user text cannot inject HTML into the reply


def test_error_reply_with_help_never_reparses() -> None:
    [error] = parse_commands("/factory nope")
    assert isinstance(error, CommandError)
    reply = format_reply("octocat", error.line, error.reply_text(set()))
    assert parse_commands(reply) == []
    assert "@octocat: I don't know the command `nope`." in reply
