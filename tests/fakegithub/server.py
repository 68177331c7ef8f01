"""Serving the fake on a loopback port from a background thread (git needs real HTTP)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from .fake import FakeGitHub


@contextmanager
def serve(fake: FakeGitHub, *, port: int = 0, startup_timeout: float = 10.0) -> Iterator[str]:
    """Run `fake.app` with uvicorn on 127.0.0.1 (a free port unless `port`), set
    `fake.base_url`, and yield it; the server stops when the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        fake.app, lifespan="off", log_level="warning", access_log=False, timeout_keep_alive=30
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-github", daemon=True
    )
    fake.base_url = base_url
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake GitHub server did not start")
        time.sleep(0.01)
    try:
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        fake.close()
