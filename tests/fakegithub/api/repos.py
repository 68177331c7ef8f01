"""Repositories and git data, read from (and written to) the real bare repository."""

from __future__ import annotations

from dataclasses import replace

from starlette.responses import Response
from starlette.routing import Route

from ..gitrepo import EMPTY_SHA, GitError
from .common import (
    ApiContext,
    ApiError,
    ApiRequest,
    json_response,
    no_content,
    not_found,
    route,
    validation_failed,
)

ROLES = ("admin", "maintain", "write", "triage", "read", "none")


class RepoRoutes:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[Route]:
        ctx, base = self.ctx, "/repos/{owner}/{repo}"
        return [
            route(ctx, base, self.get_repo, ["GET"]),
            route(ctx, base + "/contents", self.get_contents, ["GET"]),
            route(ctx, base + "/contents/{path:path}", self.get_contents, ["GET"]),
            route(ctx, base + "/git/trees/{sha:path}", self.get_tree, ["GET"]),
            route(ctx, base + "/git/blobs/{sha}", self.get_blob, ["GET"]),
            route(ctx, base + "/git/ref/{ref:path}", self.get_ref, ["GET"]),
            route(ctx, base + "/git/matching-refs/{ref:path}", self.matching_refs, ["GET"]),
            route(ctx, base + "/git/refs", self.create_ref, ["POST"]),
            route(ctx, base + "/git/refs/{ref:path}", self.update_ref, ["PATCH"]),
            route(ctx, base + "/git/refs/{ref:path}", self.delete_ref, ["DELETE"]),
            route(ctx, base + "/branches/{branch:path}", self.get_branch, ["GET"]),
            route(ctx, base + "/commits/{ref}", self.get_commit, ["GET"]),
            route(ctx, base + "/collaborators/{username}/permission", self.permission, ["GET"]),
            route(
                ctx,
                "/orgs/{org}/teams/{team_slug}/memberships/{username}",
                self.team_membership,
                ["GET"],
            ),
        ]

    async def team_membership(self, req: ApiRequest) -> Response:
        org, slug, login = req.params["org"], req.params["team_slug"], req.params["username"]
        with self.ctx.store.lock:
            if login not in self.ctx.store.teams.get((org, slug), set()):
                raise not_found()
            return json_response(
                {
                    "url": f"{self.ctx.shapes.api}/orgs/{org}/teams/{slug}/memberships/{login}",
                    "role": "member",
                    "state": "active",
                }
            )

    async def get_repo(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            return json_response(self.ctx.shapes.repo(req.repo))

    async def get_contents(self, req: ApiRequest) -> Response:
        repo = req.repo
        ref = req.query("ref") or repo.default_branch
        sha = req.git.resolve(ref)
        if sha is None:
            raise ApiError(404, f"No commit found for the ref {ref}")
        path = req.params.get("path", "").strip("/")
        if not path:
            entries = req.git.ls_tree(sha)
            return json_response([self.ctx.shapes.content_item(repo, e, ref) for e in entries])
        entry = req.git.entry(sha, path)
        if entry is None:
            raise not_found()
        if entry.type == "tree":
            items = [
                self.ctx.shapes.content_item(repo, replace(e, path=f"{path}/{e.path}"), ref)
                for e in req.git.ls_tree(entry.sha)
            ]
            return json_response(items)
        data = req.git.read_blob(entry.sha)
        return json_response(self.ctx.shapes.content_file(repo, entry, data, ref))

    async def get_tree(self, req: ApiRequest) -> Response:
        spec = req.params["sha"]
        git = req.git
        tree_sha = git.object_sha(f"{spec}^{{tree}}") or git.object_sha(
            f"refs/heads/{spec}^{{tree}}"
        )
        if tree_sha is None:
            raise not_found()
        recursive = (req.query("recursive") or "") not in ("", "0", "false")
        entries = git.ls_tree(tree_sha, recursive=recursive)
        return json_response(self.ctx.shapes.tree(req.repo, tree_sha, entries))

    async def get_blob(self, req: ApiRequest) -> Response:
        sha = req.params["sha"]
        if req.git.object_type(sha) != "blob":
            raise not_found()
        return json_response(self.ctx.shapes.blob(req.repo, sha, req.git.read_blob(sha)))

    async def get_ref(self, req: ApiRequest) -> Response:
        ref = "refs/" + req.params["ref"]
        sha = req.git.refs(ref).get(ref)
        if sha is None:
            raise not_found()
        return json_response(self.ctx.shapes.ref(req.repo, ref, sha))

    async def matching_refs(self, req: ApiRequest) -> Response:
        prefix = "refs/" + req.params["ref"]
        refs = req.git.refs("refs/")
        return json_response(
            [
                self.ctx.shapes.ref(req.repo, ref, sha)
                for ref, sha in sorted(refs.items())
                if ref.startswith(prefix)
            ]
        )

    async def create_ref(self, req: ApiRequest) -> Response:
        body = await req.json()
        ref, sha = body.get("ref"), body.get("sha")
        if not isinstance(ref, str) or not ref.startswith("refs/") or ref.count("/") < 2:
            raise ApiError(
                422, "Reference name must start with 'refs/' and have at least two slashes."
            )
        if not isinstance(sha, str) or req.git.rev_parse(sha) is None:
            raise ApiError(422, "Object does not exist")
        if ref in req.git.refs(ref):
            raise ApiError(422, "Reference already exists")
        req.git.update_ref(ref, sha, EMPTY_SHA)
        self.ctx.events.refs_moved(req.repo, [(ref, EMPTY_SHA, sha)], req.actor)
        return json_response(self.ctx.shapes.ref(req.repo, ref, sha), status=201)

    async def update_ref(self, req: ApiRequest) -> Response:
        ref = "refs/" + req.params["ref"]
        body = await req.json()
        sha = body.get("sha")
        old = req.git.refs(ref).get(ref)
        if old is None:
            raise ApiError(422, "Reference does not exist")
        if not isinstance(sha, str) or req.git.rev_parse(sha) is None:
            raise ApiError(422, "Object does not exist")
        if not body.get("force") and not req.git.is_ancestor(old, sha):
            raise ApiError(422, "Update is not a fast forward")
        try:
            req.git.update_ref(ref, sha, old)
        except GitError:
            raise ApiError(422, "Reference cannot be updated") from None
        self.ctx.events.refs_moved(req.repo, [(ref, old, sha)], req.actor)
        return json_response(self.ctx.shapes.ref(req.repo, ref, sha))

    async def delete_ref(self, req: ApiRequest) -> Response:
        ref = "refs/" + req.params["ref"]
        old = req.git.refs(ref).get(ref)
        if old is None:
            raise ApiError(422, "Reference does not exist")
        req.git.delete_ref(ref)
        self.ctx.events.refs_moved(req.repo, [(ref, old, EMPTY_SHA)], req.actor)
        return no_content()

    async def get_branch(self, req: ApiRequest) -> Response:
        name = req.params["branch"]
        sha = req.git.rev_parse(f"refs/heads/{name}")
        if sha is None:
            raise ApiError(404, "Branch not found")
        info = req.git.commit_info(sha)
        return json_response(self.ctx.shapes.branch(req.repo, name, info))

    async def get_commit(self, req: ApiRequest) -> Response:
        sha = req.git.resolve(req.params["ref"])
        if sha is None:
            raise validation_failed("Commit", f"No commit found for SHA: {req.params['ref']}")
        return json_response(self.ctx.shapes.commit(req.repo, req.git.commit_info(sha)))

    async def permission(self, req: ApiRequest) -> Response:
        login = req.params["username"]
        repo = req.repo
        with self.ctx.store.lock:
            user = self.ctx.store.users.get(login)
            if user is None:
                raise not_found()
            role = repo.permissions.get(login)
            if role is None:
                if login == repo.owner.login:
                    role = "admin"
                else:
                    role = "none" if repo.private else "read"
            return json_response(self.ctx.shapes.collaborator_permission(repo, user, role))
