"""The repository itself: metadata, files and trees at a ref, branches, user permissions."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from githubkit.utils import UNSET
from githubkit_schemas.latest.models import ContentFile

from ._base import RepoScope, present
from .errors import GitHubNotFound, GitHubValidationFailed, github_errors
from .models import Branch, RepoFile, RepoInfo, RepoPermission, Tree, TreeEntry

# A full commit id (SHA-1, or SHA-256 for repositories that use it): what it names never changes.
_COMMIT_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


class RepositoryOps(RepoScope):
    async def get_repository(self) -> RepoInfo:
        """The repository's metadata, read once per client (a client lives for one job).

        Cost: one conditional request the first time (none if the client was given ``info``),
        none afterwards.
        """
        if self._info is None:
            with github_errors(f"read repository {self.full_name}"):
                raw = (await self.gh.rest.repos.async_get(self.owner, self.repo)).parsed_data
            self._info = RepoInfo(
                id=raw.id,
                full_name=raw.full_name,
                default_branch=raw.default_branch,
                clone_url=raw.clone_url,
                private=raw.private,
                html_url=raw.html_url,
            )
        return self._info

    async def get_file(self, path: str, ref: str | None = None) -> RepoFile | None:
        """A file's bytes at ``ref`` (default branch if None); None if there is no such file.

        Cost: one request, conditional (304 when unchanged: no rate limit); a missing file is
        a 404, which GitHub gives no validator, so it costs a request each time. At a full
        commit sha the answer, missing or not, is remembered and costs nothing again.
        """
        fixed = f"{self.full_name}@{ref}:{path.lstrip('/')}"
        if ref and _COMMIT_SHA.match(ref) and self._commit_facts is not None:
            if (fact := await self._commit_facts.get(fixed)) is not None:
                return _file_from_fact(fact, ref)
            found = await self._read_file(path, ref)
            await self._commit_facts.put(fixed, _fact_from_file(found))
            return found
        return await self._read_file(path, ref)

    async def _read_file(self, path: str, ref: str | None) -> RepoFile | None:
        try:
            with github_errors(f"read {path} in {self.full_name}"):
                response = await self.gh.rest.repos.async_get_content(
                    self.owner, self.repo, path.lstrip("/"), ref=ref or UNSET
                )
        except GitHubNotFound:
            return None
        raw = response.parsed_data
        if not isinstance(raw, ContentFile):
            return None  # a directory, symlink or submodule is not a file to read
        content = present(raw.content) or ""
        if raw.encoding == "base64" and (content or raw.size == 0):
            return RepoFile(raw.path, raw.sha, ref, base64.b64decode(content))
        # Over 1 MB the contents API leaves the content out; the blob API goes to 100 MB.
        with github_errors(f"read blob {raw.sha} in {self.full_name}"):
            blob = (
                await self.gh.rest.git.async_get_blob(self.owner, self.repo, raw.sha)
            ).parsed_data
        if blob.encoding == "base64":
            data = base64.b64decode(blob.content)
        else:
            data = blob.content.encode()
        return RepoFile(raw.path, raw.sha, ref, data)

    async def get_tree(self, ref: str, *, recursive: bool = True) -> Tree:
        """Every entry under the root at ``ref`` (a branch, tag or commit/tree sha)."""
        with github_errors(f"read the tree of {self.full_name}@{ref}"):
            response = await self.gh.rest.git.async_get_tree(
                self.owner, self.repo, ref, recursive="1" if recursive else UNSET
            )
        raw = response.parsed_data
        entries = tuple(TreeEntry(e.path, e.type, e.sha, e.mode, present(e.size)) for e in raw.tree)
        return Tree(raw.sha, entries, raw.truncated)

    async def get_branch(self, name: str) -> Branch | None:
        try:
            with github_errors(f"read branch {name} of {self.full_name}"):
                response = await self.gh.rest.git.async_get_ref(
                    self.owner, self.repo, f"heads/{name}"
                )
        except GitHubNotFound:
            return None
        return Branch(name, response.parsed_data.object_.sha)

    async def create_branch(self, name: str, sha: str) -> Branch:
        """Creates ``name`` at ``sha``; if it already exists, returns it as it is."""
        try:
            with github_errors(f"create branch {name} in {self.full_name}"):
                response = await self.gh.rest.git.async_create_ref(
                    self.owner, self.repo, ref=f"refs/heads/{name}", sha=sha
                )
        except GitHubValidationFailed:
            # "Reference already exists": an earlier attempt made it.
            existing = await self.get_branch(name)
            if existing is None:
                raise
            return existing
        return Branch(name, response.parsed_data.object_.sha)

    async def get_permission(self, username: str) -> RepoPermission:
        """What ``username`` may do here; ``none`` for strangers and unknown users."""
        try:
            with github_errors(f"read {username}'s permission on {self.full_name}"):
                response = await self.gh.rest.repos.async_get_collaborator_permission_level(
                    self.owner, self.repo, username
                )
        except GitHubNotFound:
            return RepoPermission(username, "none", "none")
        raw = response.parsed_data
        return RepoPermission(username, raw.permission, raw.role_name)

    async def is_team_member(self, org: str, team_slug: str, username: str) -> bool:
        """Whether ``username`` is an active member of ``org/team_slug`` (404: not a member)."""
        try:
            with github_errors(f"read membership of {username} in {org}/{team_slug}"):
                response = await self.gh.rest.teams.async_get_membership_for_user_in_org(
                    org, team_slug, username
                )
        except GitHubNotFound:
            return False
        return response.parsed_data.state == "active"


def _fact_from_file(found: RepoFile | None) -> dict[str, Any]:
    if found is None:
        return {"missing": True}
    return {
        "path": found.path,
        "sha": found.sha,
        "content": base64.b64encode(found.content).decode(),
    }


def _file_from_fact(fact: Mapping[str, Any], ref: str) -> RepoFile | None:
    if fact.get("missing"):
        return None
    return RepoFile(fact["path"], fact["sha"], ref, base64.b64decode(fact["content"]))
