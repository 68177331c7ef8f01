"""The worker's object graph: GitHub App, model, sandbox, workspaces, coordinator, handlers.

Built once per worker process from :class:`Services`; every external thing can be replaced by
an argument (a GitHub transport, an Anthropic HTTP client, scripted stage agents) so tests run
the same graph against the fake GitHub and a fake Messages API.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agents.code_stage import CoderStage
from agents.deploy_stage import DeployerStage
from agents.coordinator import Coordinator, CoordinatorConfig
from agents.events import Asker, EventHandlers
from bot.contracts.lifecycle import Stage
from agents.liveness import Liveness
from agents.llm import LLMClient
from agents.plan_stage import PlannerStage
from agents.review_stage import ReviewerStage
from agents.runtime import Runtime
from agents.sandbox import SandboxProvider
from agents.stages import StageAgent
from agents.stages import FeatureView
from agents.testing_stage import TesterStage
from agents.toolbox import Toolbox
from agents.workspace import GitAuthor, Workspace
from bot.github.app import GitHubApp
from bot.github.errors import GitHubNotFound
from bot.knowledge_jobs import KnowledgeJobs
from bot.permissions import WRITE_LEVELS, PermissionChecker
from bot.services import Services
from bot.sandboxing import sandbox_options
from bot.settings import PUBLIC_GITHUB_API, Settings, SettingsError
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
    coordinator: Coordinator
    handlers: EventHandlers
    liveness: Liveness
    github_app: GitHubApp
    llm: LLMClient

    knowledge: KnowledgeService | None = None

    async def aclose(self) -> None:
        await self.llm.aclose()
        await self.github_app.aclose()
        if self.knowledge is not None:
            self.knowledge.close()


def github_app_from(
    settings: Settings, services: Services, transport: httpx.AsyncBaseTransport | None
) -> GitHubApp:
    pem = settings.private_key_pem()
    problems = []
    if settings.app_id is None:
        problems.append("FACTORY_APP_ID: the worker acts as a GitHub App and needs its id")
    if pem is None:
        problems.append(
            "FACTORY_PRIVATE_KEY or FACTORY_PRIVATE_KEY_PATH: the App's private key is needed"
        )
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
    toolbox = Toolbox(llm=llm, sandbox_for=sandbox.for_workspace, workspace=workspace)
    runtime = Runtime(
        github=github_app,
        tools=toolbox,
        available=frozenset(stage_agents),
        server_url=web_url(settings.github_api_url),
    )

    async def fetch_permission(repo: str, login: str) -> str:
        gh = await runtime.repo(await _installation_of(github_app, repo), repo)
        with contextlib.suppress(GitHubNotFound):
            return str((await gh.get_permission(login)).permission)
        return "none"

    permissions = PermissionChecker(fetch_permission, redis=services.redis)

    async def may_teach(repo: str, login: str) -> bool:
        return await permissions.permission(repo, login) in WRITE_LEVELS

    jobs = (
        KnowledgeJobs(knowledge_service, runtime, services.db, workspace, may_teach=may_teach)
        if knowledge_service is not None
        else None
    )
    if jobs is not None:
        toolbox.knowledge = jobs.context_for

    async def remember_failure(feature: FeatureView, stage: Stage, error: str) -> None:
        if jobs is not None:
            gh = await runtime.repo(feature.installation_id, feature.repository)
            issue = await gh.get_issue(feature.issue_number)
            await jobs.remember_failure(
                feature.repository, stage.value, error, issue.title, issue.number
            )

    liveness = Liveness(services.redis)
    coordinator = Coordinator(
        db=services.db,
        queue=services.redis,
        agents=stage_agents,
        open_repo=runtime.open_repo,
        liveness=liveness,
        config=CoordinatorConfig(
            max_rounds=settings.max_rounds,
            max_concurrent_runs=settings.max_concurrent_runs,
            job_timeout_s=settings.job_timeout_s,
            server_url=web_url(settings.github_api_url),
            channel_prefix=f"factory:{settings.app_id}",
        ),
        on_step_failed=remember_failure,
    )

    handlers = EventHandlers(
        coordinator=coordinator,
        runtime=runtime,
        permissions=permissions,
        db=services.db,
        ask=ask or (jobs.ask if jobs is not None else None),
        learn=jobs.learn if jobs is not None else None,
        refresh_knowledge=jobs.refresh if jobs is not None else None,
    )
    return WorkerParts(
        coordinator=coordinator,
        handlers=handlers,
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


async def _installation_of(github_app: GitHubApp, repo: str) -> int:
    owner, name = repo.split("/", 1)
    return await github_app.installation_id_for(owner, name)
