"""``POST /webhooks/github``: size check, signature check, then the delivery pipeline.

Nothing is parsed or stored before the signature over the raw body is verified, and a server
without a webhook secret refuses to serve the endpoint at all.
"""

from __future__ import annotations

import json
import re

from arq.connections import ArqRedis
from fastapi import APIRouter, Request, Response
from githubkit.webhooks import verify

from bot.db.database import Database
from bot.db.models import DeliveryStatus
from bot.settings import Settings
from webhooks.pipeline import BadDelivery, DeliveryOutcome, Unavailable, build_processor

WEBHOOK_PATH = "/webhooks/github"
# GitHub caps webhook payloads at 25 MB and drops larger ones itself.
MAX_BODY_BYTES = 25 * 1024 * 1024
# The delivery header is not covered by the signature and names an archive file: GitHub
# sends GUIDs, so anything beyond this alphabet is refused.
DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class WebhookSecretMissing(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            "FACTORY_WEBHOOK_SECRET is not set: the webhook endpoint is not served, because "
            "unsigned deliveries are never accepted. Set it to the App's webhook secret."
        )


def webhook_router(*, settings: Settings, db: Database, arq: ArqRedis) -> APIRouter:
    if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
        raise WebhookSecretMissing()
    secret = settings.webhook_secret.get_secret_value()
    processor = build_processor(settings=settings, db=db, arq=arq)
    router = APIRouter()

    @router.post(WEBHOOK_PATH, response_class=Response, summary="Receive a GitHub webhook")
    async def receive_webhook(request: Request) -> Response:
        body = await _read_body(request)
        if body is None:
            return _error(413, f"payload larger than {MAX_BODY_BYTES} bytes")
        signature = request.headers.get("x-hub-signature-256", "")
        # githubkit falls back to SHA-1 for other prefixes; only SHA-256 is accepted here.
        if not signature.startswith("sha256=") or not verify(secret, body, signature):
            return _error(401, "missing or invalid X-Hub-Signature-256")
        event = request.headers.get("x-github-event")
        if not event:
            return _error(400, "missing X-GitHub-Event header")
        delivery_id = request.headers.get("x-github-delivery", "")
        if DELIVERY_ID.fullmatch(delivery_id) is None:
            return _error(400, "missing or malformed X-GitHub-Delivery header")
        try:
            outcome = await processor.process(event=event, delivery_id=delivery_id, body=body)
        except BadDelivery as exc:
            return _answer(400, {"delivery": delivery_id, "error": exc.reason})
        except Unavailable as exc:
            return _answer(503, {"delivery": delivery_id, "error": exc.reason})
        return _answer(_status_code(outcome), outcome.as_json())

    return router


async def _read_body(request: Request) -> bytes | None:
    """The raw body, or None when it exceeds the limit (checked before reading it all)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _status_code(outcome: DeliveryOutcome) -> int:
    return 202 if outcome.status is DeliveryStatus.QUEUED else 200


def _answer(status_code: int, content: dict[str, object]) -> Response:
    return Response(json.dumps(content), status_code=status_code, media_type="application/json")


def _error(status_code: int, message: str) -> Response:
    return _answer(status_code, {"error": message})
