"""The knowledge store's work inside the worker: index on install and push, learn from PRs,
answer `/factory ask`, and give the planner its context.

GitHub is read through the repository client; everything stored goes through the knowledge
service, which scrubs secrets and e-mail addresses before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from agents.runtime import Runtime
from agents.untrusted import sanitize
from agents.workspace import Workspace
from bot.contracts.prp import Plan
from bot.db import Database, Feature, Installation, Repository
from knowledge.learning import PullRequestOutcome, TaskFailure
from knowledge.service import KnowledgeService

log = logging.getLogger(__name__)

WorkspaceFactory = Callable[[int, str], Awaitable[Workspace]]
# (repository, login) -> whether that person has write access: only they teach the knowledge base.
MayTeach = Callable[[str, str], Awaitable[bool]]


async def _nobody(repository: str, login: str) -> bool:
    return False


@dataclass
class KnowledgeJobs:
    service: KnowledgeService
    runtime: Runtime
    db: Database
    workspace: WorkspaceFactory
    # Reviews and comments by others are not learned from: an outsider's "always do X" on a
    # closed PR must not become a lesson future plans and reviews are shown.
    may_teach: MayTeach = _nobody

    async def context_for(self, repository: str, query: str) -> str:
        """The planner's and reviewer's context: files, past patterns and past failures.

        A repository used before any install or push job indexed it is indexed now, once.
        """
        async with self.db.session() as s:
            row = await s.scalar(select(Repository).where(Repository.full_name == repository))
            feature = await s.scalar(
                select(Feature).where(Feature.repository == repository).order_by(Feature.id.desc())
            )
        if feature is not None and (
            row is None or row.indexed_sha is None or not self._held_here(repository)
        ):
            await self.index_repository(feature.installation_id, repository)
        context = await self.service.retrieve(repository, query)
        return context.render()

    async def ask(self, repository: str, question: str) -> str:
        context = await self.service.retrieve(repository, question, token_budget=3000, k_files=5)
        rendered = context.render()
        if not rendered:
            return (
                "I don't know anything about this repository yet: it is indexed when the app is "
                "installed and on every push to the default branch."
            )
        return f"Here is what I found for _{question.strip()}_:\n\n{rendered}"

    async def index_repository(self, installation_id: int, repository: str) -> None:
        """Full index of the default branch from a fresh clone (install, first use, reindex)."""
        gh = await self.runtime.repo(installation_id, repository)
        info = await gh.get_repository()
        workspace = await self.workspace(installation_id, info.clone_url)
        async with workspace as ws:
            await ws.clone()
            sha = await ws.head()
            report = await self.service.index_directory(repository, ws.path)
        await self._remember_index(installation_id, repository, info.id, info.default_branch, sha)
        log.info("indexed %s at %s: %s", repository, sha[:12], report)

    async def refresh(
        self,
        *,
        installation_id: int,
        repo: str,
        after: str,
        added: Sequence[str] = (),
        modified: Sequence[str] = (),
        removed: Sequence[str] = (),
        **_: Any,
    ) -> None:
        """Re-index only what a push to the default branch changed."""
        async with self.db.session() as s:
            row = await s.scalar(select(Repository).where(Repository.full_name == repo))
        if row is None or row.indexed_sha is None or not self._held_here(repo):
            await self.index_repository(installation_id, repo)
            return
        gh = await self.runtime.repo(installation_id, repo)
        changed: dict[str, str] = {}
        gone = list(removed)
        for path in dict.fromkeys([*added, *modified]):
            found = await gh.get_file(path, ref=after)
            if found is None:
                gone.append(path)
            else:
                try:
                    changed[path] = found.text
                except UnicodeDecodeError:
                    gone.append(path)  # binary now: drop it from the index
        await self.service.apply_changes(repo, changed, gone)
        async with self.db.session() as s:
            stored = await s.scalar(select(Repository).where(Repository.full_name == repo))
            if stored is not None:
                stored.indexed_sha = after

    async def learn(
        self, *, installation_id: int, repo: str, pr_number: int, merged: bool, feature_id: int
    ) -> None:
        """Store what worked (merged) or why it was rejected (closed unmerged)."""
        gh = await self.runtime.repo(installation_id, repo)
        async with self.db.session() as s:
            feature = await s.get(Feature, feature_id)
        if feature is None:
            return
        issue = await gh.get_issue(feature.issue_number)
        files = await gh.list_pull_request_files(pr_number)
        reviews = await gh.list_reviews(pr_number)
        inline = await gh.list_review_comments(pr_number)
        teachers: dict[str, bool] = {}

        async def teaches(login: str) -> bool:
            if login.endswith("[bot]"):
                return False
            if login not in teachers:
                teachers[login] = await self.may_teach(repo, login)
            return teachers[login]

        notes = [
            f"{r.author} ({r.state.lower()}): {r.body}"
            for r in reviews
            if r.body.strip() and await teaches(r.author)
        ]
        notes += [f"{c.author} on {c.path}: {c.body}" for c in inline if await teaches(c.author)]
        closing = ""
        if not merged:
            comments = await gh.list_issue_comments(pr_number)
            people = [c for c in comments if not c.author_is_bot and await teaches(c.author)]
            closing = people[-1].body if people else ""
        # What a reader sees of them: hidden markup must not survive into stored lessons (the
        # knowledge layer collapses whitespace, which could turn it into a kept code span).
        notes = [sanitize(note) for note in notes]
        closing = sanitize(closing)
        plan = Plan.from_dict(feature.plan).to_markdown() if feature.plan else ""
        outcome = PullRequestOutcome(
            repository=repo,
            pr_number=pr_number,
            merged=merged,
            issue_title=issue.title,
            issue_body=issue.body,
            issue_number=issue.number,
            plan=plan,
            diff_summary="\n".join(f"{f.status} {f.filename}" for f in files),
            files=[f.filename for f in files],
            labels=list(issue.labels),
            review_comments=notes,
            failed_checks=[],
            closing_comment=closing,
        )
        await self.service.record_pull_request(outcome)

    async def remember_failure(
        self, repository: str, task: str, error: str, issue_title: str, issue_number: int
    ) -> None:
        await self.service.record_task_failure(
            TaskFailure(
                repository=repository,
                task=task,
                error=error,
                issue_title=issue_title,
                issue_number=issue_number,
            )
        )

    def _held_here(self, repository: str) -> bool:
        """Whether this worker's own lexical index has the repository (each worker keeps one;
        vectors already in a shared Chroma are not embedded again when it is rebuilt)."""
        return self.service.lexical.file_count(repository) > 0

    async def _remember_index(
        self, installation_id: int, repository: str, repo_id: int, default_branch: str, sha: str
    ) -> None:
        async with self.db.session() as s:
            row = await s.scalar(select(Repository).where(Repository.full_name == repository))
            if row is None:
                # The installation row may not exist yet (its webhook can arrive later).
                known = await s.get(Installation, installation_id) is not None
                row = Repository(
                    id=repo_id,
                    full_name=repository,
                    installation_id=installation_id if known else None,
                )
                s.add(row)
            row.default_branch = default_branch
            row.indexed_sha = sha
