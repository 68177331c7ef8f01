"""What retrieval hands to the agents, and how it reads in a prompt."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from knowledge.store import Kind

FILES_HEADING = "## Relevant files"
RELATED_HEADING = "## Related tests and docs"
PATTERNS_HEADING = "## Past patterns that worked"
FAILURES_HEADING = "## Past failures to avoid"
FAILURES_INTRO = "Earlier attempts on this repository that reviewers rejected or that failed; do not repeat them."
PATTERNS_INTRO = "Merged pull requests on this repository for similar issues."


def estimate_tokens(text: str) -> int:
    """Rough token count (~4 characters a token), good enough for budgeting a prompt."""
    return (len(text) + 3) // 4


@dataclass(frozen=True)
class Snippet:
    path: str
    start_line: int
    end_line: int
    symbol: str
    text: str


@dataclass(frozen=True)
class FileMatch:
    path: str
    score: float
    reasons: tuple[str, ...]
    snippets: tuple[Snippet, ...] = ()


@dataclass(frozen=True)
class Lesson:
    kind: Kind
    id: str
    text: str
    similarity: float
    pr_number: int | None = None
    issue_number: int | None = None
    outcome: str = ""


@dataclass(frozen=True)
class RetrievedContext:
    repository: str
    query: str
    files: tuple[FileMatch, ...] = ()
    patterns: tuple[Lesson, ...] = ()
    failures: tuple[Lesson, ...] = ()
    related: tuple[FileMatch, ...] = ()  # tests, docs and examples: named, no snippets

    @classmethod
    def empty(cls, repository: str = "", query: str = "") -> RetrievedContext:
        return cls(repository=repository, query=query)

    @property
    def is_empty(self) -> bool:
        return not (self.files or self.patterns or self.failures or self.related)

    def render(self) -> str:
        """Markdown sections for a planner's or reviewer's prompt ("" when there is nothing)."""
        sections: list[str] = []
        if self.files:
            sections.append(
                "\n".join(
                    [FILES_HEADING, *(render_file(i, f) for i, f in enumerate(self.files, 1))]
                )
            )
        if self.related:
            sections.append("\n".join([RELATED_HEADING, *map(render_related, self.related)]))
        if self.patterns:
            sections.append(
                "\n".join([PATTERNS_HEADING, PATTERNS_INTRO, *map(render_lesson, self.patterns)])
            )
        if self.failures:
            sections.append(
                "\n".join([FAILURES_HEADING, FAILURES_INTRO, *map(render_lesson, self.failures)])
            )
        return "\n\n".join(sections)

    def estimated_tokens(self) -> int:
        return estimate_tokens(self.render())


class Retriever(Protocol):
    async def retrieve(
        self, repo: str, query: str, *, token_budget: int = 6000, k_files: int = 10
    ) -> RetrievedContext: ...


class NullRetriever:
    """The retriever for when knowledge is switched off: always an empty context."""

    async def retrieve(
        self, repo: str, query: str, *, token_budget: int = 6000, k_files: int = 10
    ) -> RetrievedContext:
        return RetrievedContext.empty(repo, query)


def render_file_header(index: int, match: FileMatch) -> str:
    why = "; ".join(match.reasons) if match.reasons else "ranked by search"
    return f"{index}. `{match.path}` (score {match.score:.3f}; {why})"


def render_related(match: FileMatch) -> str:
    why = f" ({match.reasons[0]})" if match.reasons else ""
    return f"- `{match.path}`{why}"


def render_snippet(snippet: Snippet) -> str:
    fence = "`" * max(3, _longest_backtick_run(snippet.text) + 1)
    label = f"Lines {snippet.start_line}-{snippet.end_line}"
    if snippet.symbol:
        label += f", `{snippet.symbol}`"
    return f"{label}:\n{fence}{_fence_language(snippet.path)}\n{snippet.text}\n{fence}"


def render_file(index: int, match: FileMatch) -> str:
    return "\n".join([render_file_header(index, match), *map(render_snippet, match.snippets)])


def render_lesson(lesson: Lesson) -> str:
    lines = lesson.text.strip().splitlines() or [""]
    head = f"- (similarity {lesson.similarity:.2f}) {lines[0]}"
    return "\n".join([head, *(f"  {line}" for line in lines[1:])])


_LANGUAGES = {
    ".py": "python",
    ".js": "javascript",
    ".ts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".rb": "ruby",
    ".md": "markdown",
    ".sh": "bash",
    ".yml": "yaml",
    ".yaml": "yaml",
    ".toml": "toml",
    ".json": "json",
    ".c": "c",
    ".cpp": "cpp",
}


def _fence_language(path: str) -> str:
    return _LANGUAGES.get(PurePosixPath(path).suffix.lower(), "")


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)
