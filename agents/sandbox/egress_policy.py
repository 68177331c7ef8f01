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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agents.sandbox import egress

# The port the forwarder listens on inside the sandbox's own network namespace.
FORWARDER_PORT = 3128

# The public package registries (and where their files are served from). `*.x` matches any
# subdomain of x. Operators add hosts with FACTORY_SANDBOX_SETUP_ALLOW.
DEFAULT_ALLOW: tuple[str, ...] = (
    "pypi.org",
    "files.pythonhosted.org",
    "registry.npmjs.org",
    "registry.yarnpkg.com",
    "github.com",
    "codeload.github.com",
    "objects.githubusercontent.com",
    "crates.io",
    "index.crates.io",
    "static.crates.io",
    "proxy.golang.org",
    "sum.golang.org",
    "rubygems.org",
    "repo.maven.apache.org",
    "repo1.maven.org",
)


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Hosts setup steps may reach: the package registries, plus what the operator adds."""

    allow: tuple[str, ...] = DEFAULT_ALLOW
    # `host[:port]` entries reached even at a private address (an internal package mirror).
    allow_private: tuple[str, ...] = ()

    def extended(self, allow: tuple[str, ...], allow_private: tuple[str, ...]) -> EgressPolicy:
        return EgressPolicy(
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
        directory = str(self.socket_path.parent)
        return [
            "--perms",
            "0755",
            "--dir",
            str(self.socket_path.parent.parent),
            "--ro-bind",
            directory,
            directory,
        ]

    def environment(self) -> dict[str, str]:
        from agents.sandbox import egress

        return egress.proxy_environment(FORWARDER_PORT)

    def wrap(self, command: str, *, python: str) -> str:
        from agents.sandbox import egress

        return egress.wrap_command(
            command, python=python, socket_path=self.socket_path, port=FORWARDER_PORT
        )

    def refusals(self) -> list[str]:
        return [f"{r.destination} ({r.reason})" for r in self._proxy.refusals]


@asynccontextmanager
async def egress_for(
    policy: EgressPolicy, socket_dir: Path, *, uid: int | None
) -> AsyncIterator[Gateway]:
    """Run a proxy for one setup command; `uid` (the sandbox's, when not ours) may connect."""
    from agents.sandbox import egress

    socket_path = socket_dir / "egress.sock"
    async with egress.EgressProxy(
        socket_path, allow=policy.allow, allow_private=policy.allow_private
    ) as proxy:
        if uid is not None:
            os.chown(socket_dir, uid, uid)
            os.chown(socket_path, uid, uid)
        yield Gateway(proxy, socket_path)
