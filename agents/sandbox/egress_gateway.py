"""How a setup step reaches package registries: through the egress proxy, never directly.

The step runs in a network namespace of its own (only its own loopback exists there). A small
forwarder inside listens on that loopback and relays each connection over a Unix socket to the
bot's egress proxy, which admits only the allowed hosts at public addresses. Package managers
find it through the usual proxy variables.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from agents.sandbox import egress
from agents.sandbox.egress_forwarder import FORWARDER_PORT, proxy_environment, wrap_command


@dataclass(frozen=True, slots=True)
class EgressAllowList:
    """Hosts setup steps may reach: the package registries, plus what the operator adds."""

    allow: tuple[str, ...] = egress.DEFAULT_ALLOW
    # `host[:port]` entries reached even at a private address (an internal package mirror).
    allow_private: tuple[str, ...] = ()

    def extended(self, allow: tuple[str, ...], allow_private: tuple[str, ...]) -> EgressAllowList:
        return EgressAllowList(
            tuple(dict.fromkeys((*self.allow, *allow))),
            tuple(dict.fromkeys((*self.allow_private, *allow_private))),
        )


class Gateway:
    """One running proxy and what the sandbox needs to use it."""

    def __init__(self, proxy: egress.EgressProxy, socket_path: Path) -> None:
        self._proxy = proxy
        self.socket_path = socket_path

    def binds(self) -> list[str]:
        """bwrap arguments showing the socket's directory (only the socket is in it)."""
        directory = self.socket_path.parent
        # The sandbox's /tmp exists already (a tmpfs); elsewhere the way there must be open.
        parent = [] if directory.parent == Path("/tmp") else ["--perms", "0755", "--dir"]
        return [
            *parent,
            *([str(directory.parent)] if parent else []),
            "--ro-bind",
            str(directory),
            str(directory),
        ]

    def environment(self) -> dict[str, str]:
        return proxy_environment(FORWARDER_PORT)

    def wrap(self, command: str, *, python: str) -> str:
        return wrap_command(command, python=python, socket_path=self.socket_path)

    def refusals(self) -> list[str]:
        return [f"{r.destination} ({r.reason})" for r in self._proxy.refusals]


@asynccontextmanager
async def egress_for(
    policy: EgressAllowList, socket_dir: Path, *, uid: int | None
) -> AsyncIterator[Gateway]:
    """Run a proxy for one setup command; `uid` (the sandbox's, when not ours) may connect."""
    socket_path = socket_dir / "egress.sock"
    async with egress.EgressProxy(
        socket_path, allow=policy.allow, allow_private=policy.allow_private
    ) as proxy:
        if uid is not None:
            os.chown(socket_dir, uid, uid)
            os.chown(socket_path, uid, uid)
        yield Gateway(proxy, socket_path)
