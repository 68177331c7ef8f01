"""How much of the coder's prompt is a cacheable prefix, over a 10-turn loop.

Runs the real `Coder` (real `CoderTools`, the local sandbox, real git commits) on a copy of a real
Python project from this venv (default `requests`), laid out as its GitHub checkout is (`src/`,
`tests/`, `docs/`, `.github/` with issue templates, SECURITY.md and the bot's own config), with
the repository context the implement stage builds: the file tree plus what the real knowledge
retriever returns for the plan (lexical index, the plan as the query). The plan names the
project's two longest modules and a function in each, for a one-line fix. The model is the
scripted fake Messages API driven through the real anthropic SDK; it computes cache reads and
writes from the cache markers the requests carry.

Prints the first prompt's size (system prompt, tool definitions, first message, in characters)
and, summed over the turns:
- the share of prompt tokens in the stable prefix (tool definitions + system prompt, byte-identical
  on every turn),
- the share of prompt tokens served from the cache (stable prefix plus the conversation so far,
  thanks to the moving marker on the last message),
- the dollar cost with caching versus the same prompts without it.

    .venv/bin/python benchmarks/prompt_cache.py [--model claude-sonnet-4-5] [--project requests]
        [--turns 10] [--synthetic-knowledge 24000]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx2

from agents.budget import Budget, TokenUsage
from agents.coder import Coder
from agents.llm import LLMClient
from agents.plan_files import MAX_LINES_PER_FILE
from agents.planner import (
    ContextRef,
    Estimate,
    PlanResult,
    PlanStep,
    render_file_tree,
)
from agents.pricing import price_for
from agents.sandbox import make_sandbox
from agents.tools import CoderTools
from tests.fakeanthropic import FakeAnthropic, count_tokens, tool_call


def git(repo: Path, *args: str) -> str:
    # The sandbox hands the checkout to an unprivileged user: git would call it dubious.
    return subprocess.run(
        ["git", "-c", f"safe.directory={repo}", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def nothing_staged(repo: Path) -> bool:
    staged = ["git", "-c", f"safe.directory={repo}", "diff", "--cached", "--quiet"]
    return subprocess.run(staged, cwd=repo, check=False).returncode == 0


# What a GitHub checkout has beside the code; the issue's words can match it, and none of it
# belongs in the coder's context.
FURNITURE = {
    ".github/ISSUE_TEMPLATE/bug_report.md": (
        "---\nname: Bug report\nabout: Create a report to help us improve\n---\n\n"
        "## Summary\n\nA clear and concise description of what the bug is.\n\n"
        "## Expected Result\n\nWhat you expected.\n\n## Actual Result\n\nWhat happened instead.\n\n"
        "## Reproduction Steps\n\n```python\nimport requests\n\n```\n\n## System Information\n\n"
        '    $ python -m requests.help\n\n```json\n{\n  "paste": "here"\n}\n```\n'
    ),
    ".github/SECURITY.md": (
        "# Vulnerability Disclosure\n\n"
        + "If you think you have found a potential security vulnerability in this project, please "
        "email the maintainers directly. Do not file a public issue. Include the request, the "
        "session and proxy configuration, the headers sent and the response received, and the "
        "versions in use. We will confirm the report, prepare a fix and a release, and credit "
        "you in the changelog unless you ask us not to.\n\n" * 24
    ),
    ".github/factory.yml": "validation_gates:\n  - python -m pytest -q\nreviewers:\n  users: [maintainer]\n",
    ".github/workflows/run-tests.yml": (
        "name: Tests\non: [push, pull_request]\njobs:\n  build:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - uses: actions/checkout@v4\n      - run: make ci\n"
    ),
    "README.md": "# The project\n\nAn HTTP library: sessions, proxies, cookies, adapters.\n",
}


def copy_project(name: str, dest: Path) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise SystemExit(f"package {name!r} is not installed")
    source = Path(spec.origin).parent
    repo = dest / "repo"
    shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path, text in FURNITURE.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    (repo / ".gitignore").write_text("__pycache__/\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "bench@example.com")
    git(repo, "config", "user.name", "bench")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Import")
    return repo


def symbol_summaries(repo: Path, limit: int) -> str:
    """Signatures with first docstring lines, the shape of what the knowledge retriever returns."""
    lines: list[str] = []
    for path in sorted(repo.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        rel = path.relative_to(repo)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                doc = (ast.get_docstring(node) or "").strip().splitlines()
                lines.append(f"{rel}:{node.lineno} {node.name}: {doc[0] if doc else ''}")
        if sum(len(line) + 1 for line in lines) > limit:
            break
    return "\n".join(lines)[:limit]


def pick_files(repo: Path) -> tuple[str, str, str, str, str]:
    """The two longest modules, a third one, and a function from the middle of each of the two.

    The plan names the first two, so the coder sees them in its prompt; the third is one the model
    finds on its own and reads with read_file.
    """
    modules = sorted(
        (p for p in repo.rglob("*.py") if len(p.read_text(encoding="utf-8").splitlines()) > 150),
        key=lambda p: (-len(p.read_text(encoding="utf-8").splitlines()), str(p)),
    )
    first, second, third = modules[0], modules[1], modules[2]

    def middle_function(path: Path) -> str:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)] or [
            n.name for n in tree.body if isinstance(n, ast.ClassDef)
        ]
        return names[len(names) // 2]

    return (
        str(first.relative_to(repo)),
        str(second.relative_to(repo)),
        str(third.relative_to(repo)),
        middle_function(first),
        middle_function(second),
    )


def knowledge_context(repo: Path, query: str, workdir: Path) -> str:
    """What the knowledge retriever gives the implement stage for this plan (lexical index; the
    plan never waits for embeddings)."""
    from knowledge.service import KnowledgeService

    service = KnowledgeService.open(
        lexical_path=workdir / "lexical.db", chroma_path=workdir / "chroma", torch_threads=1
    )
    try:
        service.indexer.index_directory("bench/project", repo, embed=False)
        return service.retriever.retrieve_sync("bench/project", query).render()
    finally:
        service.close()


def stable_prefix_tokens(request: dict[str, Any]) -> int:
    def plain(block: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in block.items() if k != "cache_control"}

    return sum(count_tokens(plain(t)) for t in request.get("tools", [])) + sum(
        count_tokens(plain(b)) for b in request.get("system", [])
    )


async def run(
    model: str, project: str, turns: int, synthetic_knowledge: int, *, reread: bool = False
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        repo = copy_project(project, Path(tmp))
        files = git(repo, "ls-files").splitlines()
        first, second, third, symbol, second_symbol = pick_files(repo)
        title = f"`{second_symbol}` mishandles an empty value"
        plan_query = (
            f"{title}\nIn {second}, `{second_symbol}` returns the wrong result when its argument "
            f"is empty; `{symbol}` in {first} calls it. Change one line of `{second_symbol}`."
        )
        knowledge = (
            symbol_summaries(repo, synthetic_knowledge)
            if synthetic_knowledge
            else knowledge_context(repo, plan_query, Path(tmp) / "knowledge")
        )
        context = f"## Files\n{render_file_tree(files)}\n\n{knowledge}"
        gate = f"{sys.executable} -m py_compile {first}"
        if reread:
            # Worst case: the model reads the files the plan named although its prompt shows them.
            reads = [
                tool_call("read_file", {"path": first, "max_lines": 150}),
                tool_call("read_file", {"path": second, "max_lines": 120}),
            ]
        else:
            # The same amount of reading, of code the prompt does not show: another module, and
            # the part of the long one past the lines the prompt shows.
            reads = [
                tool_call("read_file", {"path": third, "max_lines": 150}),
                tool_call(
                    "read_file",
                    {"path": second, "start_line": MAX_LINES_PER_FILE + 1, "max_lines": 120},
                ),
            ]
        script = [
            tool_call("list_files", {"path": project, "depth": 1}),
            tool_call("search", {"pattern": f"def {symbol}|class {symbol}", "glob": "*.py"}),
            reads[0],
            tool_call("find_symbol", {"name": symbol}),
            reads[1],
            # Longer sessions read more of the code before changing it.
            *[
                tool_call(
                    "read_file",
                    {
                        "path": second,
                        "start_line": MAX_LINES_PER_FILE + 121 + 60 * i,
                        "max_lines": 60,
                    },
                )
                for i in range(max(0, turns - 10))
            ],
            tool_call(
                "create_file",
                {"path": f"{project}/_bench_note.py", "content": '"""Benchmark note."""\n'},
            ),
            tool_call("complete_step", {"step": 1, "message": "Add a note module"}),
            tool_call("run_command", {"command": gate}),
            tool_call("read_file", {"path": f"{project}/_bench_note.py"}),
            tool_call("finish", {"summary": "Added a note module; it compiles."}),
        ]
        plan = PlanResult(
            issue_number=1,
            title=title,
            goal=f"`{second_symbol}` handles an empty argument; a note module records the fix.",
            context=[
                ContextRef(first, f"`{symbol}` calls the function to fix"),
                ContextRef(second, f"defines `{second_symbol}`, the one line to change"),
            ],
            steps=[
                PlanStep(
                    title="Add the module",
                    details="Create it and compile it.",
                    files=(f"{project}/_bench_note.py",),
                )
            ],
            validation_gates=[gate],
            estimate=Estimate(size="XS", complexity="low"),
        )
        fake = FakeAnthropic(script)
        sandbox = make_sandbox("local", workspace_root=Path(tmp))

        async def commit(message: str) -> str | None:
            git(repo, "add", "-A")
            if nothing_staged(repo):
                return None
            git(repo, "commit", "-q", "-m", message)
            return git(repo, "rev-parse", "HEAD")

        async with httpx2.AsyncClient(transport=fake.transport()) as http:
            llm = LLMClient(api_key="sk-ant-benchmark", model=model, http_client=http)
            result = await Coder(llm).implement(
                workdir=repo,
                plan=plan,
                tools=CoderTools(repo, sandbox),
                gates=[gate],
                sandbox=sandbox,
                budget=Budget(),
                commit=commit,
                repo_context=context,
            )
    if not result.finished:
        raise SystemExit(f"the scripted run did not finish: {result.stop_reason}")
    usages = fake.usages()
    prompts = [
        u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
        for u in usages
    ]
    prefixes = [stable_prefix_tokens(r) for r in fake.requests]
    opening = fake.requests[0]
    system_chars = sum(len(b.get("text", "")) for b in opening.get("system", []))
    tools_chars = len(json.dumps(opening.get("tools", [])))
    message_chars = len(json.dumps(opening.get("messages", [])))
    identical = len({json.dumps([r["system"], r["tools"]]) for r in fake.requests}) == 1
    price = price_for(model)
    uncached = sum(
        price.cost_usd(TokenUsage(input_tokens=p, output_tokens=u["output_tokens"]))
        for p, u in zip(prompts, usages, strict=True)
    )
    return {
        "model": model,
        "project": project,
        "turns": len(usages),
        "repository_context_chars": len(context),
        "knowledge_chars": len(knowledge),
        "first_prompt_system_chars": system_chars,
        "first_prompt_chars": system_chars + tools_chars + message_chars,
        "tools_chars": tools_chars,
        "stable_prefix_tokens": prefixes[0],
        "prefix_byte_identical_on_every_turn": identical,
        "prompt_tokens_per_turn": prompts,
        "stable_prefix_share": sum(prefixes) / sum(prompts),
        "cache_read_share": sum(u["cache_read_input_tokens"] for u in usages) / sum(prompts),
        "cost_usd_with_cache": result.cost_usd,
        "cost_usd_without_cache": uncached,
        "commits": len(result.commits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="claude-sonnet-4-5")
    parser.add_argument(
        "--project", default="requests", help="an installed package to use as the repository"
    )
    parser.add_argument("--turns", type=int, default=10, help="model turns (at least 10)")
    parser.add_argument(
        "--synthetic-knowledge",
        type=int,
        default=0,
        metavar="CHARS",
        help="use this many characters of symbol summaries instead of the real retriever",
    )
    parser.add_argument(
        "--reread",
        action="store_true",
        help="worst case: the model re-reads the files its prompt already shows",
    )
    args = parser.parse_args()
    figures = asyncio.run(
        run(args.model, args.project, args.turns, args.synthetic_knowledge, reread=args.reread)
    )
    print(f"model {figures['model']}, a copy of {figures['project']}, {figures['turns']} turns")
    print(
        f"first prompt: {figures['first_prompt_chars']:,} chars (system prompt "
        f"{figures['first_prompt_system_chars']:,}, tool definitions {figures['tools_chars']:,})"
    )
    print(
        f"repository context in the system prompt: {figures['repository_context_chars']:,} chars "
        f"(knowledge {figures['knowledge_chars']:,})"
    )
    print(
        f"stable prefix (tools + system): {figures['stable_prefix_tokens']:,} tokens, "
        f"byte-identical on every turn: {figures['prefix_byte_identical_on_every_turn']}"
    )
    print(f"prompt tokens per turn: {figures['prompt_tokens_per_turn']}")
    print(f"share of prompt tokens in the stable prefix: {figures['stable_prefix_share']:.1%}")
    print(f"share of prompt tokens read from the cache:  {figures['cache_read_share']:.1%}")
    with_cache, without = figures["cost_usd_with_cache"], figures["cost_usd_without_cache"]
    print(f"cost with caching ${with_cache:.4f} vs without ${without:.4f}")


if __name__ == "__main__":
    main()
