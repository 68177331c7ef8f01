"""Signed webhook deliveries to a URL or straight into an ASGI app.

GitHub delivers asynchronously, and so does the fake: a delivery is queued and sent in order,
and tests wait with `wait()` (from a plain thread) or `await settle()` (from the event loop the
ASGI sink lives on, which must keep running for the delivery to happen).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from githubkit.webhooks import sign
from starlette.types import ASGIApp

DEFAULT_ASGI_PATH = "/webhooks/github"


@dataclass
class Delivery:
    id: str
    event: str
    action: str | None
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    response: bytes = b""
    error: str | None = None
    done: concurrent.futures.Future[None] = field(default_factory=concurrent.futures.Future)

    @property
    def payload(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


def signed(event: str, payload: dict[str, Any], secret: str | None) -> tuple[dict[str, str], bytes]:
    """Headers and raw body of one delivery, exactly as GitHub sends them."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "content-type": "application/json",
        "user-agent": "GitHub-Hookshot/fake",
        "x-github-event": event,
        "x-github-delivery": str(uuid.uuid4()),
        "x-github-hook-id": "1",
        "x-github-hook-installation-target-type": "integration",
    }
    installation = payload.get("installation")
    if isinstance(installation, dict):
        headers["x-github-hook-installation-target-id"] = str(installation.get("id"))
    if secret is not None:
        headers["x-hub-signature-256"] = sign(secret, body, "sha256")
        headers["x-hub-signature"] = sign(secret, body, "sha1")
    return headers, body


class WebhookSink:
    """Where deliveries go; nothing is sent (or recorded) until a sink is set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._url: str | None = None
        self._app: ASGIApp | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._own_loop_thread: threading.Thread | None = None
        self._asgi_lock: asyncio.Lock | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.deliveries: list[Delivery] = []

    @property
    def active(self) -> bool:
        return self._url is not None or self._app is not None

    def configure(self, url: str | None, asgi_app: ASGIApp | None) -> None:
        """Send to `url` over HTTP, or into `asgi_app` (then `url` is the path inside it, default
        /webhooks/github). An ASGI app is called on the event loop running here, if any, so it
        can use that loop's resources; otherwise on a private loop thread."""
        with self._lock:
            self._url = url if asgi_app is None else (url or DEFAULT_ASGI_PATH)
            self._app = asgi_app
            self._asgi_lock = None
            if asgi_app is None:
                self._loop = None
                return
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                self._loop = self._private_loop()

    def _private_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="fake-github-asgi", daemon=True)
        thread.start()
        self._own_loop_thread = thread
        return loop

    def send(self, delivery: Delivery) -> Delivery:
        with self._lock:
            self.deliveries.append(delivery)
            if self._app is not None and self._loop is not None:
                future = asyncio.run_coroutine_threadsafe(
                    self._post_asgi(self._app, self._url or DEFAULT_ASGI_PATH, delivery),
                    self._loop,
                )
                future.add_done_callback(lambda f: _finish(delivery, f))
                return delivery
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="fake-github-webhooks"
                )
            url = self._url
            assert url is not None
            self._executor.submit(self._post_url, url, delivery).add_done_callback(
                lambda f: _finish(delivery, f)
            )
        return delivery

    @staticmethod
    def _post_url(url: str, delivery: Delivery) -> None:
        response = httpx.post(url, content=delivery.body, headers=delivery.headers, timeout=30)
        delivery.status = response.status_code
        delivery.response = response.content

    async def _post_asgi(self, app: ASGIApp, url: str, delivery: Delivery) -> None:
        if self._asgi_lock is None:
            self._asgi_lock = asyncio.Lock()
        async with self._asgi_lock:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://fake-github") as c:
                response = await c.post(url, content=delivery.body, headers=delivery.headers)
        delivery.status = response.status_code
        delivery.response = response.content

    def pending(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if not d.done.done()]

    def wait(self, timeout: float = 10.0) -> list[Delivery]:
        """Block until every delivery so far was answered; returns them all."""
        if self._loop is not None and _running_loop() is self._loop:
            raise RuntimeError("on the sink's event loop: use `await fake.settle_webhooks()`")
        concurrent.futures.wait([d.done for d in self.pending()], timeout=timeout)
        return list(self.deliveries)

    async def settle(self, timeout: float = 10.0) -> list[Delivery]:
        """Await every delivery so far, letting this loop run the ASGI sink meanwhile."""
        pending = [asyncio.wrap_future(d.done) for d in self.pending()]
        if pending:
            await asyncio.wait_for(asyncio.gather(*pending), timeout)
        return list(self.deliveries)

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            if self._own_loop_thread is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._own_loop_thread.join(timeout=5)
                self._own_loop_thread = None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _finish(delivery: Delivery, future: concurrent.futures.Future[None]) -> None:
    error = future.exception()
    if error is not None:
        delivery.error = f"{type(error).__name__}: {error}"
    if not delivery.done.done():
        delivery.done.set_result(None)
