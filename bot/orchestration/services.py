"""What every job handler may use besides its own context: the worker's long-lived services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from bot.contracts.jobs import KnowledgeRefresh
from bot.contracts.lifecycle import Stage
from bot.orchestration.context import JobContext, OrgRepositories, RepoClients
from bot.orchestration.coordinator import Coordinator
from bot.orchestration.projector import StatusProjector
from bot.permissions import PermissionChecker
from bot.store.repositories import RepositoryStore
from bot.store.runs import RunStore

# (repository, question) -> markdown answer
Asker = Callable[[str, str], Awaitable[str]]


class Knowledge(Protocol):
    """The knowledge store's work in the worker (see bot.orchestration.knowledge)."""

    async def ask(self, repository: str, question: str) -> str: ...

    async def learn(
        self, ctx: JobContext, *, pr_number: int, merged: bool, feature_id: int
    ) -> None: ...

    async def refresh(self, ctx: JobContext, push: KnowledgeRefresh) -> None: ...


@dataclass(frozen=True)
class JobServices:
    coordinator: Coordinator
    projector: StatusProjector
    runs: RunStore
    repositories: RepositoryStore
    permissions: PermissionChecker
    clients: RepoClients
    orgs: OrgRepositories
    # The stages this worker has an agent for.
    available: Collection[Stage]
    # The label ingress routes on for a repository that has not said otherwise.
    default_trigger_label: str
    knowledge: Knowledge | None = None
    # Answers `/factory ask`; the knowledge store's answer when None and it is on.
    ask: Asker | None = None

    def context(self, installation_id: int, repository: str) -> JobContext:
        return JobContext(
            installation_id=installation_id,
            repository=repository,
            clients=self.clients,
            available=self.available,
            orgs=self.orgs,
        )

    @property
    def asker(self) -> Asker | None:
        if self.ask is not None:
            return self.ask
        return self.knowledge.ask if self.knowledge is not None else None
