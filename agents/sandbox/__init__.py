"""Where every agent command runs: isolated from the network, the host and the bot's secrets.

Only a repository's setup steps (`run(..., network=True)`) may reach the network.
"""

from __future__ import annotations

from agents.sandbox.base import BASE_ENV, CommandResult, Sandbox, SandboxUnavailable
from agents.sandbox.docker_backend import DEFAULT_DOCKER_IMAGE, DockerSandbox
from agents.sandbox.factory import make_sandbox
from agents.sandbox.local import BubblewrapSandbox, SubprocessSandbox, UnshareSandbox
from agents.sandbox.process import ResourceLimits

__all__ = [
    "BASE_ENV",
    "DEFAULT_DOCKER_IMAGE",
    "BubblewrapSandbox",
    "CommandResult",
    "DockerSandbox",
    "ResourceLimits",
    "Sandbox",
    "SandboxUnavailable",
    "SubprocessSandbox",
    "UnshareSandbox",
    "make_sandbox",
]
