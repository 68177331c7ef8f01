"""GitHub Actions workflows as GitHub sees them: the YAML files on the default branch."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from .gitrepo import BareRepo
from .state import Repo, Store

WORKFLOW_DIR = ".github/workflows"


@dataclass(frozen=True)
class WorkflowFile:
    id: int
    path: str
    name: str
    triggers: frozenset[str]


def _triggers(document: object) -> frozenset[str]:
    if not isinstance(document, dict):
        return frozenset()
    # YAML 1.1 reads a bare `on:` key as the boolean True.
    on = document.get("on", document.get(True))
    if isinstance(on, str):
        return frozenset([on])
    if isinstance(on, list):
        return frozenset(str(t) for t in on)
    if isinstance(on, dict):
        return frozenset(str(t) for t in on)
    return frozenset()


def discover(store: Store, repo: Repo, git: BareRepo) -> list[WorkflowFile]:
    head = git.rev_parse(f"refs/heads/{repo.default_branch}")
    folder = git.entry(head, WORKFLOW_DIR) if head else None
    if head is None or folder is None or folder.type != "tree":
        return []
    found = []
    for entry in git.ls_tree(folder.sha):
        if entry.type != "blob" or not entry.path.endswith((".yml", ".yaml")):
            continue
        path = f"{WORKFLOW_DIR}/{entry.path}"
        try:
            document = yaml.safe_load(git.read_blob(entry.sha))
        except yaml.YAMLError:
            document = None
        name = document.get("name") if isinstance(document, dict) else None
        with store.lock:
            if path not in repo.workflow_ids:
                repo.workflow_ids[path] = store.next_id()
            ident = repo.workflow_ids[path]
        found.append(WorkflowFile(ident, path, str(name or path), _triggers(document)))
    return found


def find(store: Store, repo: Repo, git: BareRepo, key: str) -> WorkflowFile | None:
    """A workflow by numeric id or by file name, as the REST paths allow."""
    for workflow in discover(store, repo, git):
        if key in (str(workflow.id), workflow.path.rsplit("/", 1)[-1], workflow.path):
            return workflow
    return None
