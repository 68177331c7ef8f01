"""Git smart HTTP: `git http-backend` run as a CGI program for each request.

Requests stream through: the body goes to the backend's stdin as it arrives (gunzipped when the
client compressed it), and the backend's output streams back after its CGI headers.
"""

from __future__ import annotations

import asyncio
import subprocess
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.types import Receive, Scope, Send

from .gitrepo import git_env

CHUNK = 64 * 1024


def http_backend_path() -> str:
    exec_path = subprocess.run(
        ["git", "--exec-path"], capture_output=True, check=True, text=True
    ).stdout.strip()
    return str(Path(exec_path) / "git-http-backend")


async def run_http_backend(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    backend: str,
    project_root: Path,
    path_info: str,
    remote_user: str,
    before_finish: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Serve one smart-HTTP request for the repository under `project_root`; returns the status."""
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    env = git_env(
        {
            "GIT_PROJECT_ROOT": str(project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": scope["method"],
            "PATH_INFO": path_info,
            "QUERY_STRING": scope.get("query_string", b"").decode(),
            "CONTENT_TYPE": headers.get("content-type", ""),
            "REMOTE_USER": remote_user,
            "REMOTE_ADDR": (scope.get("client") or ("127.0.0.1", 0))[0],
            "GIT_HTTP_MAX_REQUEST_BUFFER": str(100 * 1024 * 1024),
        }
    )
    if "git-protocol" in headers:
        env["GIT_PROTOCOL"] = headers["git-protocol"]
    proc = await asyncio.create_subprocess_exec(
        backend,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        # Nobody reads stderr; a pipe could fill up and stall the backend.
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    gzipped = headers.get("content-encoding", "").lower() == "gzip"
    feeder = asyncio.create_task(_feed(proc, receive, gzipped))
    assert proc.stdout is not None
    status, response_headers, rest = await _read_cgi_headers(proc.stdout)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode(), v.encode()) for k, v in response_headers],
        }
    )
    if rest:
        await send({"type": "http.response.body", "body": rest, "more_body": True})
    while True:
        chunk = await proc.stdout.read(CHUNK)
        if not chunk:
            break
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await feeder
    await proc.wait()
    if before_finish is not None:
        # State follows the refs before the client sees its push finish.
        await before_finish()
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    return status


async def _feed(proc: asyncio.subprocess.Process, receive: Receive, gzipped: bool) -> None:
    assert proc.stdin is not None
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    try:
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            data = message.get("body", b"")
            more = message.get("more_body", False)
            if inflater is not None:
                data = inflater.decompress(data)
            if data:
                proc.stdin.write(data)
                await proc.stdin.drain()
        if inflater is not None:
            tail = inflater.flush()
            if tail:
                proc.stdin.write(tail)
                await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        # The backend may answer (e.g. with an error) before reading everything.
        pass
    finally:
        proc.stdin.close()


async def _read_cgi_headers(
    stdout: asyncio.StreamReader,
) -> tuple[int, list[tuple[str, str]], bytes]:
    buffer = b""
    while b"\r\n\r\n" not in buffer and b"\n\n" not in buffer:
        chunk = await stdout.read(CHUNK)
        if not chunk:
            break
        buffer += chunk
    separator = b"\r\n\r\n" if b"\r\n\r\n" in buffer else b"\n\n"
    head, _, rest = buffer.partition(separator)
    status = 200
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        if ":" not in line:
            continue
        name, value = (part.strip() for part in line.split(":", 1))
        if name.lower() == "status":
            status = int(value.split()[0])
        else:
            headers.append((name, value))
    return status, headers, rest
