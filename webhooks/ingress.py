"""``POST /webhooks/github``: size and time limits on the body, signature check, then the
delivery pipeline.

Nothing is parsed or stored before the signature over the raw body is verified, and a server
without a webhook secret refuses to serve the endpoint at all. A client that is too big, too
slow or gone before its body arrived is answered (413, 408) or dropped with one INFO line:
those are the internet's usual noise, not errors of the bot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass

from arq.connections import ArqRedis
from fastapi import APIRouter, Request, Response
from githubkit.webhooks import verify
from starlette.requests import ClientDisconnect

from bot.db.database import Database
from bot.db.models import DeliveryStatus
from bot.settings import Settings
from webhooks.pipeline import (
    ENQUEUE_TIMEOUT_S,
    STORE_TIMEOUT_S,
    BadDelivery,
    DeliveryOutcome,
    Unavailable,
    build_processor,
)

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/github"
# GitHub caps webhook payloads at 25 MB and drops larger ones itself.
MAX_BODY_BYTES = 25 * 1024 * 1024
# GitHub gives up on a delivery after 10 s; a body still arriving after 5 s leaves no time to
# answer it, and a client that slow is holding a connection, not delivering a webhook.
BODY_TIMEOUT_S = 5.0
# The delivery header is not covered by the signature and names an archive file: GitHub
# sends GUIDs, so anything beyond this alphabet is refused.
DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True, slots=True)
class IngressLimits:
    """How much and how long the endpoint waits: on the client for its body, on the state
    store and on Redis for each delivery."""

    max_body_bytes: int = MAX_BODY_BYTES
    body_timeout_s: float = BODY_TIMEOUT_S
    store_timeout_s: float = STORE_TIMEOUT_S
    enqueue_timeout_s: float = ENQUEUE_TIMEOUT_S


class WebhookSecretMissing(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            "FACTORY_WEBHOOK_SECRET is not set: the webhook endpoint is not served, because "
            "unsigned deliveries are never accepted. Set it to the App's webhook secret."
        )


class _Refused(Exception):
    """The body was not received; ``response`` is the answer (if the client still listens)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def webhook_router(
    *, settings: Settings, db: Database, arq: ArqRedis, limits: IngressLimits | None = None
) -> APIRouter:
    if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
        raise WebhookSecretMissing()
    secret = settings.webhook_secret.get_secret_value()
    limits = limits or IngressLimits()
    processor = build_processor(
        settings=settings,
        db=db,
        arq=arq,
        store_timeout_s=limits.store_timeout_s,
        enqueue_timeout_s=limits.enqueue_timeout_s,
    )
    router = APIRouter()

    @router.post(WEBHOOK_PATH, response_class=Response, summary="Receive a GitHub webhook")
    async def receive_webhook(request: Request) -> Response:
        try:
            body = await _read_body(request, limits)
        except _Refused as refused:
            return refused.response
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


async def _read_body(request: Request, limits: IngressLimits) -> bytes:
    """The raw body (the signature covers its exact bytes), within the size and time limits.

    Raises ``_Refused`` with the answer when the body is too large (checked before reading it
    all), arrives too slowly, or the client goes away before sending it.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise _Refused(_too_large(limits))
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.body_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_body_bytes:
                    raise _Refused(_too_large(limits))
                chunks.append(chunk)
    except TimeoutError:
        log.info(
            "webhook client %s sent %d of %s body bytes in %.1f s: answered 408",
            _peer(request),
            size,
            declared or "?",
            limits.body_timeout_s,
        )
        raise _Refused(_error(408, "request body not received in time", close=True)) from None
    except ClientDisconnect:
        log.info(
            "webhook client %s disconnected after %d of %s body bytes: nothing recorded",
            _peer(request),
            size,
            declared or "?",
        )
        # Nobody reads this answer; the server drops it with the connection.
        raise _Refused(_error(400, "client disconnected")) from None
    return b"".join(chunks)


def _too_large(limits: IngressLimits) -> Response:
    # The rest of the body is never read, so the connection cannot carry another request.
    return _error(413, f"payload larger than {limits.max_body_bytes} bytes", close=True)


def _peer(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "unknown"


def _status_code(outcome: DeliveryOutcome) -> int:
    return 202 if outcome.status is DeliveryStatus.QUEUED else 200


def _answer(status_code: int, content: dict[str, object], *, close: bool = False) -> Response:
    headers = {"Connection": "close"} if close else None
    return Response(
        json.dumps(content), status_code=status_code, media_type="application/json", headers=headers
    )


def _error(status_code: int, message: str, *, close: bool = False) -> Response:
    return _answer(status_code, {"error": message}, close=close)
