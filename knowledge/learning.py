"""Remember what reviewers accepted and rejected, so the next plan for a similar issue does better.

A merged pull request becomes a `pattern` (what worked); one closed unmerged becomes a
`failure` (why it was rejected); a task that crashed becomes a `failure` with its error. The
stored text is scrubbed of secrets and e-mail addresses. The embedded text leads with the
issue, because the later query is a new issue: similar issues must find each other.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from knowledge.embeddings import Embedder
from knowledge.scrub import scrub
from knowledge.store import Entry, EntryMetadata, Kind, KnowledgeStore

_PART_CHARS = 1200
_DOCUMENT_CHARS = 4000
_EMBED_CHARS = 1500


@dataclass(frozen=True)
class PullRequestOutcome:
    """A pull request the bot opened, once it is merged or closed."""

    repository: str
    pr_number: int
    merged: bool
    issue_title: str
    issue_body: str = ""
    issue_number: int | None = None
    plan: str = ""
    diff_summary: str = ""
    files: Sequence[str] = ()
    labels: Sequence[str] = ()
    review_comments: Sequence[str] = ()
    failed_checks: Sequence[str] = ()
    closing_comment: str = ""


@dataclass(frozen=True)
class TaskFailure:
    """A task (plan, code, review, test, deploy) that ended in an error."""

    repository: str
    task: str
    error: str
    issue_title: str = ""
    issue_body: str = ""
    issue_number: int | None = None
    labels: Sequence[str] = ()


class LearningRecorder:
    def __init__(
        self,
        *,
        store: KnowledgeStore,
        embedder: Embedder,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._clock = clock

    def record_pull_request(self, outcome: PullRequestOutcome) -> str:
        """Store a merged PR as a pattern, a closed one as a failure; returns the entry id.

        The id is derived from the repository and PR number, so a redelivered webhook
        overwrites the entry instead of duplicating it.
        """
        kind = Kind.PATTERN if outcome.merged else Kind.FAILURE
        entry_id = f"pr-{_digest(outcome.repository)}-{outcome.pr_number}"
        document = _pull_request_document(outcome)
        lesson = "\n".join(
            [*outcome.review_comments, outcome.closing_comment, *outcome.failed_checks]
            if not outcome.merged
            else [outcome.plan, *outcome.review_comments]
        )
        self._store_entry(
            kind,
            entry_id,
            document,
            embed_text=_embed_text(outcome.issue_title, outcome.issue_body, lesson),
            metadata=EntryMetadata(
                repository=outcome.repository,
                source_type="pull_request",
                paths=tuple(outcome.files),
                labels=tuple(outcome.labels),
                outcome="merged" if outcome.merged else "closed_unmerged",
                pr_number=outcome.pr_number,
                issue_number=outcome.issue_number,
                created_at=self._clock(),
            ),
        )
        return entry_id

    def record_task_failure(self, failure: TaskFailure) -> str:
        entry_id = "task-" + _digest(
            failure.repository, failure.task, str(failure.issue_number), failure.error
        )
        issue = f" on issue #{failure.issue_number}" if failure.issue_number is not None else ""
        title = f" ({failure.issue_title})" if failure.issue_title else ""
        document = f"Task `{failure.task}` failed{issue}{title}.\nError:\n{_clip(failure.error)}"
        self._store_entry(
            Kind.FAILURE,
            entry_id,
            document,
            embed_text=_embed_text(
                failure.issue_title, failure.issue_body, f"{failure.task}: {failure.error}"
            ),
            metadata=EntryMetadata(
                repository=failure.repository,
                source_type="task",
                labels=tuple(failure.labels),
                outcome=f"task_failed:{failure.task}",
                issue_number=failure.issue_number,
                created_at=self._clock(),
            ),
        )
        return entry_id

    def remember(
        self,
        kind: Kind,
        *,
        repository: str,
        text: str,
        source_type: str,
        issue_number: int | None = None,
        pr_number: int | None = None,
        paths: Sequence[str] = (),
        labels: Sequence[str] = (),
    ) -> str:
        """Store a plan, a review or any other note for a repository; returns the entry id."""
        entry_id = f"{kind.value}-" + _digest(
            repository, source_type, str(issue_number), str(pr_number), text
        )
        self._store_entry(
            kind,
            entry_id,
            text,
            embed_text=text,
            metadata=EntryMetadata(
                repository=repository,
                source_type=source_type,
                paths=tuple(paths),
                labels=tuple(labels),
                pr_number=pr_number,
                issue_number=issue_number,
                created_at=self._clock(),
            ),
        )
        return entry_id

    def _store_entry(
        self, kind: Kind, entry_id: str, document: str, *, embed_text: str, metadata: EntryMetadata
    ) -> None:
        clean_document = scrub(document)[:_DOCUMENT_CHARS]
        clean_embed_text = scrub(embed_text)[:_EMBED_CHARS]
        vector = self._embedder.embed([clean_embed_text])[0]
        self._store.upsert(kind, [Entry(entry_id, clean_document, vector, metadata)])


def _pull_request_document(outcome: PullRequestOutcome) -> str:
    issue = f"issue #{outcome.issue_number}: " if outcome.issue_number is not None else "issue: "
    verdict = "was merged" if outcome.merged else "was closed without merging"
    lines = [f"PR #{outcome.pr_number} ({issue}{outcome.issue_title}) {verdict}."]
    if outcome.files:
        lines.append("Files: " + ", ".join(f"`{f}`" for f in outcome.files[:20]))
    if outcome.merged:
        if outcome.plan:
            lines.append("Plan that worked:\n" + _clip(outcome.plan))
        if outcome.diff_summary:
            lines.append("Change:\n" + _clip(outcome.diff_summary))
        if outcome.review_comments:
            lines.append("Review notes:\n" + _bullets(outcome.review_comments))
    else:
        if outcome.review_comments:
            lines.append("Reviewers said:\n" + _bullets(outcome.review_comments))
        if outcome.failed_checks:
            lines.append("Failed checks:\n" + _bullets(outcome.failed_checks))
        if outcome.closing_comment:
            lines.append("Closing comment:\n" + _clip(outcome.closing_comment))
        if outcome.plan:
            lines.append("Rejected plan:\n" + _clip(outcome.plan, 600))
    return "\n".join(lines)


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {_clip(' '.join(item.split()), 500)}" for item in items if item.strip())


def _clip(text: str, limit: int = _PART_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _embed_text(title: str, body: str, lesson: str) -> str:
    return "\n".join(part for part in (title, _clip(body, 600), _clip(lesson, 600)) if part.strip())


def _digest(*parts: str) -> str:
    return hashlib.sha1("\x00".join(parts).encode("utf-8")).hexdigest()[:20]
