"""The HTTP server: health endpoints and the webhook ingress, built from given services."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from bot.services import Services
from bot.settings import Settings
from webhooks.ingress import WEBHOOK_PATH, IngressLimits, WebhookSecretMissing, webhook_router

log = logging.getLogger(__name__)

READY_CHECK_TIMEOUT_S = 2.0


def create_app(
    settings: Settings, services: Services, *, ingress_limits: IngressLimits | None = None
) -> FastAPI:
    """The FastAPI app. It owns nothing: the caller opens and closes ``services``.

    ``ingress_limits`` changes how long and how much the webhook endpoint waits (tests shorten
    the body timeout); the defaults keep every answer inside GitHub's 10 s.
    """
    app = FastAPI(title="Agent Factory", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.services = services
    app.include_router(health_router(services))
    try:
        app.include_router(
            webhook_router(
                settings=settings, db=services.db, arq=services.redis, limits=ingress_limits
            )
        )
        app.state.webhooks_enabled = True
    except WebhookSecretMissing as exc:
        log.warning("%s", exc)
        app.include_router(webhooks_disabled_router(str(exc)))
        app.state.webhooks_enabled = False
    return app


def webhooks_disabled_router(reason: str) -> APIRouter:
    """Answers deliveries with 503 and the reason, so GitHub's delivery log shows what to fix."""
    router = APIRouter()

    @router.post(WEBHOOK_PATH, include_in_schema=False)
    async def webhooks_disabled() -> JSONResponse:
        return JSONResponse({"error": reason}, status_code=503)

    return router


def health_router(services: Services) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive and serving HTTP."""
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        """Redis and the database answer; 503 naming what is down otherwise."""
        checks: dict[str, Callable[[], Awaitable[object]]] = {
            "redis": services.redis.ping,
            "database": services.db.ping,
        }
        results = await asyncio.gather(*(_probe(name, check) for name, check in checks.items()))
        down = {name: problem for name, problem in results if problem is not None}
        if down:
            return JSONResponse({"status": "unavailable", "down": down}, status_code=503)
        return JSONResponse({"status": "ready", "checks": {name: "ok" for name in checks}})

    return router


async def _probe(name: str, check: Callable[[], Awaitable[object]]) -> tuple[str, str | None]:
    try:
        await asyncio.wait_for(check(), READY_CHECK_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the type is named.
        # Details (hosts, addresses) go to the log, not to whoever asks the public endpoint.
        log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
        return name, type(exc).__name__ if not isinstance(exc, TimeoutError) else "timeout"
    return name, None
