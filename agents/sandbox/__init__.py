"""Where every agent command runs: isolated from the network, the host and the bot's secrets.

Only a repository's setup steps (`run(..., network=True)`) may reach the network, and only the
package registries, through the egress proxy.
"""

from __future__ import annotations

from agents.sandbox.base import BASE_ENV, CommandResult, Sandbox, SandboxUnavailable
from agents.sandbox.docker_backend import DEFAULT_DOCKER_IMAGE, DockerSandbox
from agents.sandbox.factory import BACKENDS, SandboxOptions, SandboxProvider, make_sandbox
from agents.sandbox.local import BubblewrapSandbox, UnsafeSubprocessSandbox
from agents.sandbox.process import ResourceLimits
from agents.sandbox.quota import DiskQuota

__all__ = [
    "BACKENDS",
    "BASE_ENV",
    "DEFAULT_DOCKER_IMAGE",
    "BubblewrapSandbox",
    "CommandResult",
    "DiskQuota",
    "DockerSandbox",
    "ResourceLimits",
    "Sandbox",
    "SandboxOptions",
    "SandboxProvider",
    "SandboxUnavailable",
    "UnsafeSubprocessSandbox",
    "make_sandbox",
]
