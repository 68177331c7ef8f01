"""The knowledge store's work inside the worker: index on install and push, learn from PRs and
failed steps, answer `/factory ask`, and give the planner and reviewer their context.

GitHub is read through the job's repository client; everything stored goes through the
knowledge service, which scrubs secrets and e-mail addresses before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agents.toolbox import WorkspaceFactory
from agents.untrusted import sanitize
from bot.contracts.jobs import KnowledgeRefresh
from bot.contracts.lifecycle import Stage
from bot.contracts.prp import Plan
from bot.contracts.runs import FeatureView
from bot.orchestration.context import JobContext
from bot.permissions import WRITE_LEVELS, PermissionChecker
from bot.store.repositories import RepositoryFacts, RepositoryStore
from bot.store.runs import RunStore
from knowledge.learning import PullRequestOutcome, TaskFailure
from knowledge.service import KnowledgeService

log = logging.getLogger(__name__)

# (installation id, repository) -> a context acting on that repository.
ContextFactory = Callable[[int, str], JobContext]
Teaches = Callable[[str], Awaitable[bool]]


@dataclass
class KnowledgeJobs:
    service: KnowledgeService
    runs: RunStore
    repositories: RepositoryStore
    permissions: PermissionChecker
    workspace: WorkspaceFactory
    contexts: ContextFactory

    async def context_for(self, repository: str, query: str) -> str:
        """The planner's and reviewer's context: files, past patterns and past failures.

        A repository used before any install or push job indexed it is indexed now, once.
        """
        installation_id = await self.repositories.installation_of_latest_run(repository)
        if installation_id is not None and (
            await self.repositories.indexed_sha(repository) is None
            or not self._held_here(repository)
        ):
            await self.index_repository(self.contexts(installation_id, repository))
        return (await self.service.retrieve(repository, query)).render()

    async def ask(self, repository: str, question: str) -> str:
        context = await self.service.retrieve(repository, question, token_budget=3000, k_files=5)
        rendered = context.render()
        if not rendered:
            return (
                "I don't know anything about this repository yet: it is indexed when the app is "
                "installed and on every push to the default branch."
            )
        return f"Here is what I found for _{question.strip()}_:\n\n{rendered}"

    async def index_repository(self, ctx: JobContext) -> None:
        """Full index of the default branch from a fresh clone (install, first use, reindex)."""
        info = await ctx.repository_info()
        workspace = await self.workspace(ctx.installation_id, info.clone_url)
        async with workspace as ws:
            await ws.clone()
            sha = await ws.head()
            report = await self.service.index_directory(ctx.repository, ws.path)
        facts = RepositoryFacts(info.id, ctx.repository, info.default_branch)
        await self.repositories.remember_index(ctx.installation_id, facts, sha=sha)
        log.info("indexed %s at %s: %s", ctx.repository, sha[:12], report)

    async def refresh(self, ctx: JobContext, push: KnowledgeRefresh) -> None:
        """Re-index only what a push to the default branch changed."""
        repo = ctx.repository
        if await self.repositories.indexed_sha(repo) is None or not self._held_here(repo):
            await self.index_repository(ctx)
            return
        gh = await ctx.github()
        changed: dict[str, str] = {}
        gone = list(push.removed)
        for path in dict.fromkeys([*push.added, *push.modified]):
            found = await gh.get_file(path, ref=push.after)
            if found is None:
                gone.append(path)
            else:
                try:
                    changed[path] = found.text
                except UnicodeDecodeError:
                    gone.append(path)  # binary now: drop it from the index
        await self.service.apply_changes(repo, changed, gone)
        await self.repositories.set_indexed_sha(repo, push.after)

    async def learn(
        self, ctx: JobContext, *, pr_number: int, merged: bool, feature_id: int
    ) -> None:
        """Store what worked (merged) or why it was rejected (closed unmerged)."""
        feature = await self.runs.get(feature_id)
        if feature is None:
            return
        gh = await ctx.github()
        issue = await gh.get_issue(feature.issue_number)
        files = await gh.list_pull_request_files(pr_number)
        reviews = await gh.list_reviews(pr_number)
        inline = await gh.list_review_comments(pr_number)
        teaches = self._teachers(ctx)
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
        plan = Plan.from_dict(feature.plan).to_markdown() if feature.plan else ""
        outcome = PullRequestOutcome(
            repository=ctx.repository,
            pr_number=pr_number,
            merged=merged,
            issue_title=issue.title,
            issue_body=issue.body,
            issue_number=issue.number,
            plan=plan,
            diff_summary="\n".join(f"{f.status} {f.filename}" for f in files),
            files=[f.filename for f in files],
            labels=list(issue.labels),
            review_comments=[sanitize(note) for note in notes],
            failed_checks=[],
            closing_comment=sanitize(closing),
        )
        await self.service.record_pull_request(outcome)

    async def remember_failure(
        self, ctx: JobContext, feature: FeatureView, stage: Stage, error: str
    ) -> None:
        issue = await (await ctx.github()).get_issue(feature.issue_number)
        await self.service.record_task_failure(
            TaskFailure(
                repository=feature.repository,
                task=stage.value,
                error=error,
                issue_title=issue.title,
                issue_number=issue.number,
            )
        )

    def _teachers(self, ctx: JobContext) -> Teaches:
        """Whether a login teaches the knowledge base: people with write access only. Reviews
        and comments by others are not learned from: an outsider's "always do X" on a closed
        PR must not become a lesson future plans and reviews are shown."""
        known: dict[str, bool] = {}

        async def teaches(login: str) -> bool:
            if login.endswith("[bot]"):
                return False
            if login not in known:
                permission = await self.permissions.permission(
                    ctx.repository, login, fetch_permission=ctx.permission_of
                )
                known[login] = permission in WRITE_LEVELS
            return known[login]

        return teaches

    def _held_here(self, repository: str) -> bool:
        """Whether this worker's own lexical index has the repository (each worker keeps one;
        vectors already in a shared Chroma are not embedded again when it is rebuilt)."""
        return self.service.lexical.file_count(repository) > 0
