"""What part a file plays in a repository: source, or the tests, docs and examples around it.

A fix lives in source. Tests and docs share an issue's vocabulary (they exercise and describe the
same behaviour), so they out-rank the source on words alone; they are listed apart, as related
files. Community and bot files (`.github/`, issue templates, SECURITY.md) are neither: they are
never offered unless the issue names them.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import PurePosixPath


class Role(StrEnum):
    SOURCE = "source"
    TEST = "test"
    DOCS = "docs"
    EXAMPLE = "example"
    META = "meta"  # repository housekeeping: CI, templates, bot config, community files


RELATED_ROLES = frozenset({Role.TEST, Role.DOCS, Role.EXAMPLE})

_META_DIRS = frozenset(
    {".github", ".gitlab", ".circleci", ".azure-pipelines", ".factory", ".devcontainer"}
)
_META_NAMES = frozenset(
    {
        "security.md",
        "code_of_conduct.md",
        "contributing.md",
        "contributing.rst",
        "codeowners",
        "funding.yml",
        "pull_request_template.md",
        "issue_template.md",
        ".pre-commit-config.yaml",
        "factory.yml",
        "factory.yaml",
    }
)
_TEST_DIRS = frozenset({"tests", "__tests__", "testsuite", "test_suite"})
# `test/` is a test folder at the top; inside a package (`django/test/`) it is a test framework.
_TOP_TEST_DIRS = frozenset({"test", "spec", "specs", "js_tests"})
_DOC_DIRS = frozenset({"doc", "docs", "documentation", "man"})
_EXAMPLE_DIRS = frozenset(
    {
        "examples",
        "example",
        "tutorials",
        "galleries",
        "gallery",
        "samples",
        "benchmarks",
        "asv_bench",
    }
)
# Translation catalogues and legal or release notes are text about the code, not code.
_DOC_SUFFIXES = frozenset({".md", ".markdown", ".rst", ".txt", ".adoc", ".po", ".pot"})
_DOC_NAMES = (
    "license",
    "licence",
    "copying",
    "authors",
    "notice",
    "changelog",
    "changes",
    "history",
)


def role_of(path: str) -> Role:
    pure = PurePosixPath(path)
    parts = [part.lower() for part in pure.parts]
    name = parts[-1] if parts else ""
    directories = parts[:-1]
    if name in _META_NAMES or any(part in _META_DIRS for part in directories):
        return Role.META
    if (
        any(part in _TEST_DIRS for part in directories)
        or (directories and directories[0] in _TOP_TEST_DIRS)
        or name.startswith("test_")
        or pure.stem.lower().endswith(("_test", "_tests"))
        or name in ("tests.py", "conftest.py")
        or ".test." in name
        or ".spec." in name
    ):
        return Role.TEST
    if directories and directories[0] in _EXAMPLE_DIRS:
        return Role.EXAMPLE
    if (
        (directories and directories[0] in _DOC_DIRS)
        or pure.suffix.lower() in _DOC_SUFFIXES
        or name.startswith(_DOC_NAMES)
    ):
        return Role.DOCS
    return Role.SOURCE
