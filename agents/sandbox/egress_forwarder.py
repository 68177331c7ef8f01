"""The sandbox's side of the egress path: a loopback forwarder and the proxy variables.

Inside a setup step's own network namespace only loopback exists, and package managers talk to
an HTTP proxy over TCP, not over a Unix socket. So before the step's command runs, a small
forwarder (FORWARDER_SOURCE, plain standard-library Python run by the bot's own interpreter,
which the sandbox shows read-only) listens on 127.0.0.1:<port> there and relays every connection
byte for byte to the egress proxy's Unix socket. It decides nothing: the proxy enforces the
policy, so a step that kills or replaces the forwarder gains nothing.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

# Any free port in the sandbox's own namespace does; nothing else listens there.
FORWARDER_PORT = 3128
# What wrap_command's shell text exits with when the forwarder cannot start.
FORWARDER_FAILED_EXIT = 125
_MAX_SOCKET_PATH = 107

# Run as `python -I -S -c FORWARDER_SOURCE SOCKET PORT`: -I so nothing from the work tree (the
# current directory) or PYTHON* variables is imported into it, -S to start fast. It exits 0 once
# it listens and the proxy socket answers, leaving a daemon child that serves until the sandbox
# ends; on failure it says why and exits 1. The child holds none of the command's stdio, so the
# sandbox's output pipes close when the command ends.
FORWARDER_SOURCE = r"""
import asyncio, fcntl, os, socket, struct, sys

def loopback_up():
    # bwrap brings `lo` up in a new network namespace; `unshare --net` leaves it down.
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = struct.pack("16sH14s", b"lo", 0, b"")
            flags = struct.unpack("16sH14s", fcntl.ioctl(s, 0x8913, req))[1]
            if not flags & 1:
                fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))
    except OSError:
        pass

async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except OSError:
        writer.close()

async def relay(path, reader, writer):
    try:
        up_reader, up_writer = await asyncio.open_unix_connection(path)
    except OSError:
        writer.close()
        return
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    up_writer.close()
    writer.close()

async def serve(path, listener):
    server = await asyncio.start_server(lambda r, w: relay(path, r, w), sock=listener)
    await server.serve_forever()

def main():
    path, port = sys.argv[1], int(sys.argv[2])
    try:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(path)
        probe.close()
    except OSError as exc:
        sys.exit(f"egress forwarder: cannot reach the egress proxy at {path}: {exc}")
    loopback_up()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
    except OSError as exc:
        sys.exit(f"egress forwarder: cannot listen on 127.0.0.1:{port}: {exc}")
    if os.fork():
        os._exit(0)
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    asyncio.run(serve(path, listener))

main()
"""


def forwarder_script() -> str:
    """The forwarder program (standard library only): `python -I -S -c SCRIPT SOCKET PORT`."""
    return FORWARDER_SOURCE


def proxy_environment(port: int = FORWARDER_PORT) -> dict[str, str]:
    """The variables that send each common tool's traffic through the forwarder on `port`.

    - curl and git (libcurl): `http_proxy` (curl reads only the lower-case form of this one),
      `HTTPS_PROXY`/`https_proxy`, `ALL_PROXY`/`all_proxy` for other schemes.
    - pip and uv (requests, reqwest), Go (net/http), wget (lower-case only), Ruby: the
      `*_PROXY` pairs; NO_PROXY empty so nothing bypasses the proxy (Go never proxies loopback
      anyway, and there is nothing else to reach).
    - npm: `npm_config_proxy` and `npm_config_https_proxy` (also read by Yarn 1).
    - Yarn 2+: `YARN_HTTP_PROXY` and `YARN_HTTPS_PROXY` (it rejects YARN_* names it does not
      know, so no YARN_NO_PROXY).
    - cargo: `CARGO_HTTP_PROXY`, which also covers its libgit2 fetches of git dependencies.
    - Node's own fetch/http (Node 22.21+, 24.5+): `NODE_USE_ENV_PROXY=1`; older Node ignores it.
    JVM tools (Maven, Gradle) read none of these; they need -Dhttps.proxyHost/-Dhttps.proxyPort.
    """
    url = f"http://127.0.0.1:{port}"
    names = (
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "npm_config_proxy",
        "npm_config_https_proxy",
        "YARN_HTTP_PROXY",
        "YARN_HTTPS_PROXY",
        "CARGO_HTTP_PROXY",
    )
    env = dict.fromkeys(names, url)
    env.update({"NO_PROXY": "", "no_proxy": "", "NODE_USE_ENV_PROXY": "1"})
    return env


def wrap_command(
    command: str, *, python: str, socket_path: Path | str, port: int = FORWARDER_PORT
) -> str:
    """Shell text that starts the forwarder (returning once it listens), then runs `command`.

    The text exits with the command's own exit code, or FORWARDER_FAILED_EXIT (with the reason
    on stderr, and the command not run) when the forwarder cannot start. `socket_path` is the
    proxy socket's path as the sandbox sees it; `python` an interpreter the sandbox can run.
    """
    if len(os.fsencode(str(socket_path))) > _MAX_SOCKET_PATH:
        raise ValueError(f"egress socket path too long for a Unix socket: {socket_path}")
    start = " ".join(
        shlex.quote(part)
        for part in (python, "-I", "-S", "-c", FORWARDER_SOURCE, str(socket_path), str(port))
    )
    return f"{start} || exit {FORWARDER_FAILED_EXIT}\n{command}"
