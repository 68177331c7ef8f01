"""The coder's tools against a real git checkout and the real sandbox."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agents.sandbox import BubblewrapSandbox, CommandResult, Sandbox, UnsafeSubprocessSandbox
from agents.tools import TOOL_NAMES, CoderTools, ToolResult

PARSER_PY = """\
class Parser:
    def parse(self, text):
        return text.split()


def parse(text):
    return Parser().parse(text)
"""
APP_TS = """\
export function render(view: View): string {
  return view.name
}
export const build = async (x: number) => x * 2
class Widget {
  public update(delta: number): void {
  }
}
"""
SERVER_GO = """\
package server

type Server struct{}

func (s *Server) Handle(w http.ResponseWriter) {}

func NewServer() *Server { return &Server{} }
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-c",
            "safe.directory=*",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            *args,
        ],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / "src" / "parser.py").write_text(PARSER_PY)
    (root / "src" / "app.ts").write_text(APP_TS)
    (root / "src" / "server.go").write_text(SERVER_GO)
    (root / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    (root / "long.txt").write_text("".join(f"line {n}\n" for n in range(1, 451)))
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "initial")
    return root


@pytest.fixture
def sandbox(repo: Path) -> Sandbox:
    bwrap = BubblewrapSandbox(repo)
    if not bwrap.probe():
        pytest.skip("bubblewrap does not run on this host")
    return bwrap


@pytest.fixture
def tools(repo: Path, sandbox: Sandbox) -> CoderTools:
    return CoderTools(repo, sandbox, protected_paths=[".github/workflows/**", "*.pem"])


@dataclass
class RecordingSandbox:
    """A fake sandbox that records what it was asked to run."""

    name: str = "recording"
    calls: list[tuple[str, Path, float]] = field(default_factory=list)

    async def run(
        self,
        command: str,
        *,
        cwd: Path,
        timeout_s: float = 300,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        self.calls.append((command, cwd, timeout_s))
        return CommandResult(command, 0, "recorded\n", "", 0.0, timed_out=False, truncated=False)


async def _ok(tools: CoderTools, tool: str, /, **tool_input: object) -> str:
    result = await tools.call(tool, tool_input)
    assert not result.is_error, result.content
    return result.content


async def _error(tools: CoderTools, tool: str, /, **tool_input: object) -> str:
    result = await tools.call(tool, tool_input)
    assert result.is_error, result.content
    return result.content


def test_definitions_are_byte_identical_across_instances(repo: Path, sandbox: Sandbox) -> None:
    first = CoderTools(repo, sandbox).definitions()
    second = CoderTools(repo, RecordingSandbox(), protected_paths=["x/**"]).definitions()
    assert json.dumps(first) == json.dumps(second)
    assert (
        [d["name"] for d in first]
        == list(TOOL_NAMES)
        == [
            "list_files",
            "read_file",
            "search",
            "find_symbol",
            "create_file",
            "edit_file",
            "run_command",
            "finish",
        ]
    )
    assert all(set(d) == {"name", "description", "input_schema"} for d in first)
    # A caller mutating its copy must not change what the next prompt sends.
    first[0]["description"] = "changed"
    assert json.dumps(CoderTools(repo, sandbox).definitions()) == json.dumps(second)


async def test_every_defined_tool_is_callable(tools: CoderTools) -> None:
    for definition in tools.definitions():
        result = await tools.call(definition["name"], {})
        assert "unknown tool" not in result.content


async def test_edit_file_replaces_a_unique_match(tools: CoderTools, repo: Path) -> None:
    content = await _ok(
        tools,
        "edit_file",
        path="src/parser.py",
        old_text="        return text.split()",
        new_text="        return text.split(',')",
    )
    assert "return text.split(',')" in (repo / "src" / "parser.py").read_text()
    assert "     3\t        return text.split(',')" in content


async def test_edit_file_refuses_text_that_is_not_unique(tools: CoderTools, repo: Path) -> None:
    message = await _error(tools, "edit_file", path="src/parser.py", old_text="parse", new_text="p")
    assert "matches 3 times" in message and "exactly once" in message
    assert (repo / "src" / "parser.py").read_text() == PARSER_PY


async def test_edit_file_refuses_text_that_is_not_there(tools: CoderTools, repo: Path) -> None:
    message = await _error(
        tools, "edit_file", path="src/parser.py", old_text="return  text", new_text="x"
    )
    assert "not found" in message and "0 matches" in message
    assert (repo / "src" / "parser.py").read_text() == PARSER_PY


async def test_edit_file_keeps_crlf_line_endings(tools: CoderTools, repo: Path) -> None:
    (repo / "win.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    await _ok(tools, "edit_file", path="win.txt", old_text="two", new_text="2")
    assert (repo / "win.txt").read_bytes() == b"one\r\n2\r\nthree\r\n"


@pytest.mark.parametrize(
    "path", ["../outside.txt", "src/../../outside.txt", "/etc/passwd", "/tmp/x.txt"]
)
async def test_paths_outside_the_workdir_are_refused(tools: CoderTools, path: str) -> None:
    for message in (
        await _error(tools, "read_file", path=path),
        await _error(tools, "create_file", path=path, content="pwned"),
        await _error(tools, "list_files", path=path),
    ):
        assert "is absolute" in message or "contains '..'" in message
    assert not Path("/tmp/x.txt").exists()


async def test_symlinks_escaping_the_workdir_are_refused(
    tools: CoderTools, repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    (repo / "escape").symlink_to(outside)
    (repo / "secret-link.txt").symlink_to(outside / "secret.txt")
    assert "outside the repository" in await _error(tools, "read_file", path="escape/secret.txt")
    assert "outside the repository" in await _error(tools, "read_file", path="secret-link.txt")
    await _error(tools, "create_file", path="escape/new.txt", content="x")
    await _error(tools, "edit_file", path="secret-link.txt", old_text="secret", new_text="x")
    assert (outside / "secret.txt").read_text() == "secret\n"
    assert not (outside / "new.txt").exists()
    assert await _ok(tools, "search", pattern="secret") == "No matches for 'secret'."


async def test_protected_paths_are_refused_for_writes(tools: CoderTools, repo: Path) -> None:
    ci = repo / ".github" / "workflows" / "ci.yml"
    message = await _error(
        tools, "edit_file", path=".github/workflows/ci.yml", old_text="push", new_text="pr"
    )
    assert "protected" in message and ".github/workflows/**" in message
    assert ci.read_text() == "on: push\n"
    assert "protected" in await _error(
        tools, "create_file", path=".github/workflows/new.yml", content="x"
    )
    assert "protected" in await _error(tools, "create_file", path="certs/server.pem", content="k")
    # .git is protected whatever the repository's configuration says.
    assert "protected" in await _error(
        tools, "create_file", path=".git/hooks/post-checkout", content="#!/bin/sh\n"
    )
    assert "protected" in await _error(
        tools, "create_file", path=".git/config", content="x", overwrite=True
    )
    # Reading a protected file is fine; writing to it through a symlinked name is not.
    assert "on: push" in await _ok(tools, "read_file", path=".github/workflows/ci.yml")
    (repo / "workflows-link").symlink_to(repo / ".github" / "workflows")
    assert "protected" in await _error(
        tools, "create_file", path="workflows-link/sneaky.yml", content="x"
    )
    assert not (repo / ".github" / "workflows" / "sneaky.yml").exists()


async def test_read_file_returns_a_numbered_window(tools: CoderTools) -> None:
    window = await _ok(tools, "read_file", path="long.txt", start_line=201, max_lines=100)
    lines = window.splitlines()
    assert lines[0] == "   201\tline 201"
    assert lines[99] == "   300\tline 300"
    assert lines[100] == "[lines 201-300 of 450; 150 more lines: read_file with start_line=301]"
    assert len(lines) == 101
    last = await _ok(tools, "read_file", path="long.txt", start_line=401)
    assert last.splitlines()[-1] == "[lines 401-450 of 450; end of file]"
    first = await _ok(tools, "read_file", path="long.txt")
    assert "[lines 1-200 of 450; 250 more lines: read_file with start_line=201]" in first
    assert "past the end" in await _error(tools, "read_file", path="long.txt", start_line=451)
    assert "does not exist" in await _error(tools, "read_file", path="missing.txt")
    assert "directory" in await _error(tools, "read_file", path="src")


async def test_list_files_shows_a_tree_without_git(tools: CoderTools) -> None:
    tree = await _ok(tools, "list_files")
    assert ".git/" not in tree and "HEAD" not in tree
    assert "  src/\n    app.ts\n    parser.py\n    server.go" in tree
    shallow = await _ok(tools, "list_files", depth=1)
    assert "  src/" in shallow and "parser.py" not in shallow


async def test_create_file_refuses_to_overwrite_unless_asked(tools: CoderTools, repo: Path) -> None:
    assert "Created new/module.py" in await _ok(
        tools, "create_file", path="new/module.py", content="A = 1\n"
    )
    message = await _error(tools, "create_file", path="new/module.py", content="A = 2\n")
    assert "already exists" in message and "overwrite" in message
    assert (repo / "new" / "module.py").read_text() == "A = 1\n"
    await _ok(tools, "create_file", path="new/module.py", content="A = 2\n", overwrite=True)
    assert (repo / "new" / "module.py").read_text() == "A = 2\n"


async def test_search_finds_tracked_and_new_files_with_git_grep(
    tools: CoderTools, repo: Path
) -> None:
    (repo / "src" / "fresh.py").write_text("def parse_fresh():\n    pass\n")
    found = await _ok(tools, "search", pattern=r"def parse\w*\(")
    assert found.splitlines() == [
        "src/fresh.py:1: def parse_fresh():",
        "src/parser.py:2: def parse(self, text):",
        "src/parser.py:6: def parse(text):",
    ]
    assert await _ok(tools, "search", pattern="render", glob="*.ts") == (
        "src/app.ts:1: export function render(view: View): string {"
    )
    assert "No matches" in await _ok(tools, "search", pattern="render", glob="*.py")
    assert "invalid regular expression" in await _error(tools, "search", pattern="def (")


async def test_search_without_git_uses_python_and_caps_results(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (tmp_path / "outside.txt").write_text("needle 999 outside\n")
    (plain / "link.txt").symlink_to(tmp_path / "outside.txt")
    (plain / "many.txt").write_text("".join(f"needle {n}\n" for n in range(150)))
    (plain / "other.md").write_text("a needle here\n")
    tools = CoderTools(plain, UnsafeSubprocessSandbox(plain))
    found = (await _ok(tools, "search", pattern=r"needle \d+$")).splitlines()
    assert found[0] == "many.txt:1: needle 0"
    assert len(found) == 101 and found[-1].startswith("[more than 100 matches")
    assert "link.txt" not in await _ok(tools, "search", pattern="999")
    assert await _ok(tools, "search", pattern="needle", glob="*.md") == "other.md:1: a needle here"


async def test_find_symbol_across_languages(tools: CoderTools) -> None:
    assert await _ok(tools, "find_symbol", name="Parser.parse") == (
        "src/parser.py:2: Parser.parse: def parse(self, text):"
    )
    both = (await _ok(tools, "find_symbol", name="parse")).splitlines()
    assert both == [
        "src/parser.py:2: Parser.parse: def parse(self, text):",
        "src/parser.py:6: parse: def parse(text):",
    ]
    assert "src/app.ts:4:" in await _ok(tools, "find_symbol", name="build")
    assert "src/app.ts:6:" in await _ok(tools, "find_symbol", name="update")
    assert "src/server.go:5:" in await _ok(tools, "find_symbol", name="Handle")
    assert "src/server.go:3:" in await _ok(tools, "find_symbol", name="Server")
    assert "No definition" in await _ok(tools, "find_symbol", name="Missing")
    assert "not a symbol name" in await _error(tools, "find_symbol", name="rm -rf /")


async def test_run_command_goes_through_the_sandbox(
    tools: CoderTools, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-must-not-leak")
    with socket.create_connection(("127.0.0.1", 6379), timeout=2):
        pass  # Redis answers outside the sandbox...
    connect = (
        f"{sys.executable} -c \"import socket; socket.create_connection(('127.0.0.1', 6379))\""
    )
    output = await _ok(tools, "run_command", command=f"pwd; env; {connect}")
    # ...but not inside it, and the command ran from the repository root without the bot's env.
    assert "Connection refused" in output
    assert "[exit code 1;" in output
    assert f"--- stdout ---\n{repo}\n" in output
    assert "sk-ant-must-not-leak" not in output
    assert "Read-only file system" in await _ok(tools, "run_command", command="touch /usr/x")


async def test_run_command_reports_timeouts(tools: CoderTools) -> None:
    output = await _ok(tools, "run_command", command="sleep 20", timeout_s=1)
    assert "timed out after 1s and was killed" in output


async def test_run_command_caps_timeout_and_uses_the_workdir(repo: Path) -> None:
    recorder = RecordingSandbox()
    tools = CoderTools(repo, recorder, command_timeout_s=60)
    assert "recorded" in await _ok(tools, "run_command", command="make test", timeout_s=9999)
    await _ok(tools, "run_command", command="make lint")
    assert recorder.calls == [("make test", repo, 60.0), ("make lint", repo, 60.0)]


async def test_run_command_keeps_head_and_tail_of_long_output(repo: Path) -> None:
    tools = CoderTools(repo, UnsafeSubprocessSandbox(repo), command_output_chars=200)
    output = await _ok(
        tools, "run_command", command="echo FIRST; seq 1 5000; echo LAST", timeout_s=10
    )
    assert "FIRST" in output and "LAST" in output and "characters omitted" in output
    assert len(output) < 500


async def test_bad_input_is_an_error_result_not_an_exception(tools: CoderTools) -> None:
    assert "unknown tool 'delete_repo'" in await _error(tools, "delete_repo")
    assert "missing required argument 'path'" in await _error(tools, "read_file")
    assert "must be a string" in await _error(tools, "read_file", path=7)
    assert "must be an integer" in await _error(tools, "read_file", path="long.txt", max_lines="9")
    assert "between 1 and 2000" in await _error(tools, "read_file", path="long.txt", max_lines=0)
    assert "unexpected argument(s) mode" in await _error(
        tools, "read_file", path="long.txt", mode="r"
    )
    assert "true or false" in await _error(
        tools, "create_file", path="a.txt", content="", overwrite="yes"
    )
    assert "must be >= 1" in await _error(tools, "run_command", command="true", timeout_s=0)
    assert "must not be empty" in await _error(tools, "finish", summary=" ")
    result = await tools.call("read_file", "not a mapping")  # type: ignore[arg-type]
    assert result.is_error and "JSON object" in result.content


async def test_finish_ends_the_task(tools: CoderTools) -> None:
    result = await tools.call("finish", {"summary": "Fixed the parser; tests pass."})
    assert result == ToolResult("Fixed the parser; tests pass.", is_error=False, finished=True)
