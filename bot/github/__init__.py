"""Everything the bot does on GitHub: app authentication and the one module that writes."""

from __future__ import annotations

from .app import GitHubApp
from .errors import (
    GitHubError,
    GitHubNotFound,
    GitHubRateLimited,
    GitHubValidationFailed,
    scrub,
)
from .manifest import convert_manifest
from .models import (
    AppCredentials,
    BotIdentity,
    CheckAction,
    CheckAnnotation,
    CheckOutput,
    ReviewComment,
)
from .repo import RepoClient
from .tokens import InstallationToken

__all__ = [
    "AppCredentials",
    "BotIdentity",
    "CheckAction",
    "CheckAnnotation",
    "CheckOutput",
    "GitHubApp",
    "GitHubError",
    "GitHubNotFound",
    "GitHubRateLimited",
    "GitHubValidationFailed",
    "InstallationToken",
    "RepoClient",
    "ReviewComment",
    "convert_manifest",
    "scrub",
]
