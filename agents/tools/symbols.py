"""find_symbol: where a class, function, method or type is defined."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from agents.tools.errors import ToolInputError
from agents.tools.paths import WorkspacePaths
from agents.tools.walk import iter_files, read_text

MAX_SYMBOLS = 50
_PYTHON = frozenset({".py", ".pyi"})
_NAME = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")

# Definition patterns per language family; {n} is the escaped symbol name. Patterns are
# line-based heuristics: they find declarations, not every way a name can come into being.
_C_LIKE_MODIFIERS = (
    r"(?:(?:public|private|protected|internal|static|final|abstract|synchronized|override|"
    r"virtual|async|sealed|open|suspend|inline|extern|unsafe|partial|readonly|new)\s+)"
)
_FAMILIES: tuple[tuple[frozenset[str], tuple[str, ...]], ...] = (
    (
        frozenset({".py", ".pyi"}),
        (r"^\s*(?:async\s+def|def|class)\s+{n}\b",),
    ),
    (
        frozenset({".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts"}),
        (
            r"\bfunction\s*\*?\s*{n}\s*[<(]",
            r"\b(?:class|interface|enum|type|namespace)\s+{n}\b",
            (
                r"\b(?:const|let|var)\s+{n}\s*(?::[^=]+)?=\s*(?:async\s+)?"
                r"(?:function\b|\([^)]*\)\s*(?::[^=]+)?=>|[A-Za-z_$][\w$]*\s*=>)"
            ),
            (
                r"^\s*(?:(?:public|private|protected|static|async|readonly|get|set|override|abstract)"
                r"\s+)*{n}\s*(?:<[^>]*>)?\s*\([^)]*\)\s*(?::[^{{]+)?\{{"
            ),
        ),
    ),
    (
        frozenset({".go"}),
        (
            r"^func\s+(?:\([^)]*\)\s*)?{n}\s*[\[(]",
            r"^\s*type\s+{n}\b",
            r"^\s+{n}\s+(?:struct|interface)\b",
        ),
    ),
    (
        frozenset({".rs"}),
        (
            r"\b(?:fn|struct|enum|trait|type|union|mod)\s+{n}\b",
            r"\bmacro_rules!\s*{n}\b",
            r"\bimpl(?:<[^>]*>)?\s+(?:[\w:]+(?:<[^>]*>)?\s+for\s+)?{n}\b",
        ),
    ),
    (
        frozenset({".java", ".kt", ".kts", ".cs", ".scala", ".swift"}),
        (
            r"\b(?:class|interface|enum|record|object|struct|trait|protocol)\s+{n}\b",
            r"\b(?:fun|def|func)\s+(?:<[^>]*>\s*)?(?:[\w.]+\.)?{n}\s*[\[(<]",
            r"^\s*" + _C_LIKE_MODIFIERS + r"+[\w<>\[\],.?\s]+?\s+{n}\s*\(",
        ),
    ),
    (
        frozenset({".rb"}),
        (r"^\s*(?:def\s+(?:self\.)?{n}\b|class\s+{n}\b|module\s+{n}\b)",),
    ),
    (
        frozenset({".php"}),
        (r"\bfunction\s+&?{n}\s*\(", r"\b(?:class|interface|trait|enum)\s+{n}\b"),
    ),
    (
        frozenset({".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx"}),
        (
            r"^\s*(?:typedef\s+)?(?:class|struct|union|enum(?:\s+class)?)\s+{n}\b",
            r"^#\s*define\s+{n}\b",
            # A definition starts at column 0 and is not a declaration ending in ';'.
            r"^(?!\s)(?!.*;\s*$)[\w\s*&:<>,~]*?\b(?:\w+::)*{n}\s*\(",
        ),
    ),
    (
        frozenset({".sh", ".bash", ".zsh"}),
        (r"^\s*(?:function\s+)?{n}\s*\(\s*\)", r"^\s*function\s+{n}\b"),
    ),
)


@dataclass(frozen=True)
class Definition:
    path: str
    line: int
    text: str


def find_symbol(paths: WorkspacePaths, name: str) -> str:
    query = name.strip().replace("::", ".")
    if not _NAME.fullmatch(query):
        raise ToolInputError(
            f"{name!r} is not a symbol name; give an identifier such as 'parse' or 'Parser.parse'"
        )
    qualifier, _, leaf = query.rpartition(".")
    compiled = _compile_patterns(leaf)
    found: list[Definition] = []
    for path, relative in iter_files(paths, paths.root):
        patterns = compiled.get(path.suffix.lower())
        if patterns is None:
            continue
        text = read_text(path)
        if text is None or leaf not in text:
            continue
        # Line patterns only see the bare name; a qualified query at least needs its qualifier.
        if (
            qualifier
            and path.suffix.lower() not in _PYTHON
            and qualifier.split(".")[-1] not in text
        ):
            continue
        found.extend(_definitions_in(path, relative, text, query, patterns))
        if len(found) > MAX_SYMBOLS:
            break
    return _render(found, query)


def _compile_patterns(leaf: str) -> dict[str, list[re.Pattern[str]]]:
    escaped = re.escape(leaf)
    by_suffix: dict[str, list[re.Pattern[str]]] = {}
    for suffixes, patterns in _FAMILIES:
        compiled = [re.compile(p.format(n=escaped)) for p in patterns]
        for suffix in suffixes:
            by_suffix[suffix] = compiled
    return by_suffix


def _definitions_in(
    path: Path, relative: str, text: str, query: str, patterns: list[re.Pattern[str]]
) -> list[Definition]:
    if path.suffix.lower() in _PYTHON:
        try:
            return _python_definitions(relative, text, query)
        except SyntaxError:
            pass  # A file mid-edit may not parse; the line patterns still find its definitions.
    lines = text.splitlines()
    return [
        Definition(relative, number, line.strip())
        for number, line in enumerate(lines, start=1)
        if any(pattern.search(line) for pattern in patterns)
    ]


def _python_definitions(relative: str, text: str, query: str) -> list[Definition]:
    tree = ast.parse(text)
    lines = text.splitlines()
    found: list[Definition] = []

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                qualified = ".".join((*scope, child.name))
                if qualified == query or qualified.endswith("." + query):
                    line = lines[child.lineno - 1].strip() if child.lineno <= len(lines) else ""
                    found.append(Definition(relative, child.lineno, f"{qualified}: {line}"))
                visit(child, (*scope, child.name))
            else:
                visit(child, scope)

    visit(tree, ())
    return found


def _render(found: list[Definition], query: str) -> str:
    if not found:
        return f"No definition of {query!r} found."
    lines = [f"{d.path}:{d.line}: {d.text}" for d in found[:MAX_SYMBOLS]]
    if len(found) > MAX_SYMBOLS:
        lines.append(f"[more than {MAX_SYMBOLS} definitions; only the first {MAX_SYMBOLS} shown]")
    return "\n".join(lines)
