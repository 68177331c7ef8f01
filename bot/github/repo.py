"""The one way agents write to a GitHub repository.

Every write the bot makes (comments, labels, reactions, branches, pull requests, reviews,
check runs, workflow dispatches, deployments) is a method here, so what the bot can do on
GitHub is listed in one place. The methods live in a module per area; this class joins them.
"""

from __future__ import annotations

from .checks import CheckOps
from .deployments import DeploymentOps
from .issues import IssueOps
from .pulls import PullOps
from .repository import RepositoryOps


class RepoClient(IssueOps, RepositoryOps, PullOps, CheckOps, DeploymentOps):
    """``RepoClient(gh, owner, repo, bot_login)``: one repository, as one installation."""
