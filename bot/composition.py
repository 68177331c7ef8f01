"""The worker's object graph: GitHub App, model, sandbox, workspaces, store, coordinator, handlers.

Built once per worker process from :class:`Services`; every external thing can be replaced by
an argument (a GitHub transport, an Anthropic HTTP client, scripted stage agents) so tests run
the same graph against the fake GitHub and a fake Messages API.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from agents.code_stage import CoderStage
from agents.deploy_stage import DeployerStage
from agents.llm import LLMClient
from agents.plan_stage import PlannerStage
from agents.review_stage import ReviewerStage
from agents.sandbox import SandboxProvider
from agents.stages import StageAgent
from agents.testing_stage import TesterStage
from agents.toolbox import Toolbox
from agents.workspace import GitAuthor, Workspace
from bot.contracts.lifecycle import Stage
from bot.github.app import GitHubApp
from bot.orchestration.context import JobContext, OrgRepositories
from bot.orchestration.coordinator import Coordinator, CoordinatorConfig
from bot.orchestration.knowledge import KnowledgeJobs
from bot.orchestration.liveness import Liveness
from bot.orchestration.progress import Progress
from bot.orchestration.projector import StatusProjector
from bot.orchestration.retry import RetryPolicy
from bot.orchestration.services import Asker, JobServices
from bot.orchestration.steps import StepRunner
from bot.permissions import PermissionChecker
from bot.private_key import PrivateKeyError
from bot.sandboxing import sandbox_options
from bot.services import Services
from bot.settings import PUBLIC_GITHUB_API, Settings, SettingsError
from bot.store.repositories import RepositoryStore
from bot.store.runs import RunStore
from knowledge.service import KnowledgeService

log = logging.getLogger(__name__)


def default_agents() -> dict[Stage, StageAgent]:
    return {
        Stage.PLAN: PlannerStage(),
        Stage.IMPLEMENT: CoderStage(),
        Stage.REVIEW: ReviewerStage(),
        Stage.TEST: TesterStage(),
        Stage.DEPLOY: DeployerStage(),
    }


def web_url(api_url: str) -> str:
    """github.com for the public API; the server itself for GitHub Enterprise Server."""
    if api_url.rstrip("/") == PUBLIC_GITHUB_API:
        return "https://github.com"
    return api_url.rstrip("/").removesuffix("/api/v3")


@dataclass
class WorkerParts:
    services: JobServices
    liveness: Liveness
    github_app: GitHubApp
    llm: LLMClient
    knowledge: KnowledgeService | None = None

    @property
    def coordinator(self) -> Coordinator:
        return self.services.coordinator

    async def aclose(self) -> None:
        await self.llm.aclose()
        await self.github_app.aclose()
        if self.knowledge is not None:
            self.knowledge.close()


def github_app_from(
    settings: Settings, services: Services, transport: httpx.AsyncBaseTransport | None
) -> GitHubApp:
    problems = []
    if settings.app_id is None:
        problems.append("FACTORY_APP_ID: the worker acts as a GitHub App and needs its id")
    pem, key_problem = _private_key(settings)
    if key_problem is not None:
        problems.append(key_problem)
    if problems:
        raise SettingsError(problems)
    assert settings.app_id is not None and pem is not None
    return GitHubApp(
        settings.app_id,
        pem,
        base_url=settings.github_api_url,
        redis=services.redis,
        user_agent=f"{settings.app_slug} (Agent Factory)",
        transport=transport,
    )


def _private_key(settings: Settings) -> tuple[str | None, str | None]:
    """The App's PEM text, or why there is none (in the words `factory doctor` uses)."""
    try:
        pem = settings.private_key_pem()
    except OSError as exc:
        return None, f"FACTORY_PRIVATE_KEY_PATH cannot be read: {exc.strerror}"
    except PrivateKeyError as exc:
        where = "FACTORY_PRIVATE_KEY" if settings.private_key else "FACTORY_PRIVATE_KEY_PATH"
        return None, f"{where}: {exc}"
    if pem is None:
        return None, (
            "FACTORY_PRIVATE_KEY or FACTORY_PRIVATE_KEY_PATH: the App's private key is needed"
        )
    return pem, None


async def build_worker_parts(
    services: Services,
    *,
    agents: Mapping[Stage, StageAgent] | None = None,
    github_transport: httpx.AsyncBaseTransport | None = None,
    anthropic_http_client: Any = None,
    knowledge_service: KnowledgeService | None = None,
    ask: Asker | None = None,
    sandbox_backend: str | None = None,
    sandbox: SandboxProvider | None = None,
) -> WorkerParts:
    settings = services.settings
    github_app = github_app_from(settings, services, github_transport)
    llm = LLMClient(
        api_key=settings.anthropic_api_key.get_secret_value()
        if settings.anthropic_api_key
        else None,
        model=settings.model,
        base_url=settings.anthropic_base_url,
        http_client=anthropic_http_client,
        timeout_s=600,
    )
    workspaces_root = settings.data_dir / "workspaces"
    if sandbox is None:
        options = sandbox_options(settings)
        if sandbox_backend is not None:
            options = dataclasses.replace(options, backend=sandbox_backend)
        sandbox = SandboxProvider(options)

    async def workspace(installation_id: int, clone_url: str) -> Workspace:
        identity = await github_app.identity()

        async def token() -> str:
            return (await github_app.installation_token(installation_id)).token

        return Workspace(
            clone_url,
            token,
            GitAuthor(identity.login, identity.email),
            root=workspaces_root,
            user_agent=f"{settings.app_slug} (Agent Factory)",
        )

    stage_agents = dict(agents) if agents is not None else default_agents()
    available = frozenset(stage_agents)
    # Pub/sub channels, status locks and caches are shared by every database of a Redis
    # server: the app's id keeps two bots (two apps) on one server apart.
    prefix = f"factory:{settings.app_id}"
    orgs = OrgRepositories(services.redis, key_prefix=prefix)

    def contexts(installation_id: int, repository: str) -> JobContext:
        return JobContext(
            installation_id=installation_id,
            repository=repository,
            clients=github_app,
            available=available,
            orgs=orgs,
        )

    runs = RunStore(services.db)
    repositories = RepositoryStore(services.db)
    permissions = PermissionChecker(redis=services.redis)
    toolbox = Toolbox(llm=llm, sandbox_for=sandbox.for_workspace, workspace=workspace)
    knowledge = (
        KnowledgeJobs(knowledge_service, runs, repositories, permissions, workspace, contexts)
        if knowledge_service is not None
        else None
    )
    if knowledge is not None:
        toolbox.knowledge = knowledge.context_for

    progress = Progress(services.redis, channel_prefix=prefix)
    liveness = Liveness(services.redis)
    projector = StatusProjector(
        store=runs,
        redis=services.redis,
        liveness=liveness,
        contexts=contexts,
        server_url=web_url(settings.github_api_url),
        key_prefix=prefix,
    )
    steps = StepRunner(
        agents=stage_agents,
        tools=toolbox,
        store=runs,
        publish=progress.publish,
        retry=RetryPolicy(),
        timeout_s=settings.job_timeout_s,
    )
    coordinator = Coordinator(
        store=runs,
        queue=services.redis,
        steps=steps,
        projector=projector,
        progress=progress,
        liveness=liveness,
        contexts=contexts,
        config=CoordinatorConfig(
            max_concurrent_runs=settings.max_concurrent_runs,
            job_timeout_s=settings.job_timeout_s,
        ),
        on_step_failed=knowledge.remember_failure if knowledge is not None else None,
    )
    job_services = JobServices(
        coordinator=coordinator,
        projector=projector,
        runs=runs,
        repositories=repositories,
        permissions=permissions,
        clients=github_app,
        orgs=orgs,
        available=available,
        default_trigger_label=settings.trigger_label,
        knowledge=knowledge,
        ask=ask,
    )
    return WorkerParts(
        services=job_services,
        liveness=liveness,
        github_app=github_app,
        llm=llm,
        knowledge=knowledge_service,
    )


def open_knowledge(settings: Settings) -> KnowledgeService:
    """The knowledge store named by settings: a Chroma server if a URL is set, else on disk."""
    lexical = settings.data_dir / "knowledge" / "lexical.sqlite3"
    lexical.parent.mkdir(parents=True, exist_ok=True)
    return KnowledgeService.open(
        lexical_path=lexical,
        chroma_path=None if settings.chroma_url else settings.effective_chroma_path,
        chroma_url=settings.chroma_url,
        model_path=settings.embedding_model,
    )
