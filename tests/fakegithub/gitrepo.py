"""Plumbing-level operations on one bare repository, so the fake's answers come from real git.

Commits are made without a work tree (hash-object, a throw-away index, commit-tree), merges with
`git merge-tree --write-tree`, and PR diffs with `git diff` against the merge base, as GitHub does.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

EMPTY_SHA = "0" * 40


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for every git process the fake starts.

    As root, git refuses repositories owned by someone else ("dubious ownership"); the fake owns
    all of them, so trusting every directory is right here.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "safe.directory",
            "GIT_CONFIG_VALUE_0": "*",
            "GIT_TERMINAL_PROMPT": "0",
        }
    )
    if extra:
        env.update(extra)
    return env


class GitError(RuntimeError):
    pass


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    type: str  # blob, tree or commit
    sha: str
    size: int | None
    path: str


@dataclass(frozen=True)
class FileChange:
    filename: str
    status: str  # added, removed, modified, renamed
    additions: int
    deletions: int
    patch: str
    sha: str | None
    previous_filename: str | None = None


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    author_date: str
    committer_name: str
    committer_email: str
    committer_date: str
    message: str


@dataclass(frozen=True)
class Author:
    name: str
    email: str


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class BareRepo:
    def __init__(self, path: Path) -> None:
        self.path = path

    # -- low level -------------------------------------------------------------------------

    def git(
        self,
        *args: str,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            ["git", "--git-dir", str(self.path), *args],
            input=input,
            capture_output=True,
            env=git_env(env),
            check=False,
        )
        if check and proc.returncode != 0:
            raise GitError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return proc

    def out(self, *args: str, **kwargs: object) -> str:
        return self.git(*args, **kwargs).stdout.decode()  # type: ignore[arg-type]

    # -- creation and commits --------------------------------------------------------------

    def init(self, default_branch: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "git",
                "init",
                "--bare",
                "--quiet",
                f"--initial-branch={default_branch}",
                str(self.path),
            ],
            check=True,
            capture_output=True,
            env=git_env(),
        )
        # Pushes over smart HTTP are refused unless receive-pack is switched on for the repo.
        self.git("config", "http.receivepack", "true")

    def commit_files(
        self,
        branch: str,
        files: dict[str, str | bytes | None],
        message: str,
        author: Author,
        *,
        start: str | None = None,
        when: datetime | None = None,
    ) -> str:
        """Commit `files` on top of `branch`, or of `start` when the branch does not exist yet
        (then it is created); a None content deletes the path."""
        old = self.rev_parse(f"refs/heads/{branch}")
        parent = old or start
        with tempfile.TemporaryDirectory() as tmp:
            index_env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if parent:
                self.git("read-tree", parent, env=index_env)
            for path, content in files.items():
                if content is None:
                    # Mode 0 removes the entry; --force-remove would need a work tree.
                    line = f"0 {'0' * 40}\t{path}\n".encode()
                    self.git("update-index", "--index-info", input=line, env=index_env)
                    continue
                data = content.encode() if isinstance(content, str) else content
                blob = self.out("hash-object", "-w", "--stdin", input=data).strip()
                self.git(
                    "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index_env
                )
            tree = self.out("write-tree", env=index_env).strip()
        sha = self.commit_tree(tree, [parent] if parent else [], message, author, when=when)
        self.update_ref(f"refs/heads/{branch}", sha, old or EMPTY_SHA)
        return sha

    def commit_tree(
        self,
        tree: str,
        parents: list[str],
        message: str,
        author: Author,
        *,
        when: datetime | None = None,
    ) -> str:
        stamp = {} if when is None else {"GIT_AUTHOR_DATE": when.isoformat()}
        env = {
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_COMMITTER_NAME": author.name,
            "GIT_COMMITTER_EMAIL": author.email,
            **stamp,
        }
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        return self.out(*args, input=message.encode(), env=env).strip()

    def update_ref(self, ref: str, new: str, old: str | None = None) -> None:
        args = ["update-ref", ref, new] + ([old] if old is not None else [])
        self.git(*args)

    def delete_ref(self, ref: str) -> None:
        self.git("update-ref", "-d", ref)

    # -- reading ---------------------------------------------------------------------------

    def rev_parse(self, rev: str) -> str | None:
        proc = self.git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    def resolve(self, ref: str) -> str | None:
        """A branch name, tag name, full ref or commit sha to a commit sha, as `?ref=` does."""
        for candidate in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
            sha = self.rev_parse(candidate)
            if sha:
                return sha
        return None

    def refs(self, prefix: str = "refs/") -> dict[str, str]:
        text = self.out("for-each-ref", "--format=%(refname) %(objectname)", prefix)
        pairs = (line.split(" ", 1) for line in text.splitlines() if line)
        return {name: sha for name, sha in pairs}

    def branches(self) -> dict[str, str]:
        return {
            ref.removeprefix("refs/heads/"): sha for ref, sha in self.refs("refs/heads/").items()
        }

    def object_type(self, spec: str) -> str | None:
        proc = self.git("cat-file", "-t", spec, check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def read_blob(self, spec: str) -> bytes:
        return self.git("cat-file", "blob", spec).stdout

    def object_sha(self, spec: str) -> str | None:
        proc = self.git("rev-parse", "--verify", "--quiet", spec, check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    def ls_tree(self, tree_ish: str, *, recursive: bool = False) -> list[TreeEntry]:
        args = ["ls-tree", "-l", "-z"] + (["-r", "-t"] if recursive else []) + [tree_ish]
        return self._parse_tree(self.out(*args))

    @staticmethod
    def _parse_tree(text: str) -> list[TreeEntry]:
        entries = []
        for record in text.split("\0"):
            if not record:
                continue
            meta, path = record.split("\t", 1)
            mode, kind, sha, size = meta.split()
            entries.append(TreeEntry(mode, kind, sha, None if size == "-" else int(size), path))
        return entries

    def entry(self, commit: str, path: str) -> TreeEntry | None:
        """The tree entry at `path` (full path kept) in `commit`, if there is one."""
        found = self.ls_tree_paths(commit, path)
        return found[0] if found else None

    def ls_tree_paths(self, commit: str, path: str) -> list[TreeEntry]:
        proc = self.git("ls-tree", "-l", "-z", commit, "--", path, check=False)
        if proc.returncode != 0:
            return []
        return [e for e in self._parse_tree(proc.stdout.decode()) if e.path == path]

    def commit_info(self, sha: str) -> CommitInfo:
        fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B"
        fields = self.out("show", "-s", f"--format={fmt}", sha).split("\0")
        return CommitInfo(
            sha=fields[0],
            tree=fields[1],
            parents=tuple(fields[2].split()),
            author_name=fields[3],
            author_email=fields[4],
            author_date=fields[5],
            committer_name=fields[6],
            committer_email=fields[7],
            committer_date=fields[8],
            message=fields[9].rstrip("\n"),
        )

    def log(self, ref: str, limit: int = 100) -> list[CommitInfo]:
        shas = self.out("rev-list", f"--max-count={limit}", ref).split()
        return [self.commit_info(sha) for sha in shas]

    def commits_between(self, base: str, head: str) -> list[str]:
        return self.out("rev-list", "--reverse", f"{base}..{head}").split()

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return (
            self.git("merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode
            == 0
        )

    def merge_base(self, a: str, b: str) -> str | None:
        proc = self.git("merge-base", a, b, check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    # -- diffs -----------------------------------------------------------------------------

    def diff_files(self, base: str, head: str) -> list[FileChange]:
        """Files changed on `head` since its merge base with `base` (GitHub's three-dot diff)."""
        start = self.merge_base(base, head) or base
        numstat: dict[str, tuple[int, int]] = {}
        for line in self.out("diff", "--numstat", "-M", start, head).splitlines():
            plus, minus, name = line.split("\t", 2)
            # Binary files count "-" lines; GitHub counts them as 0.
            numstat[name.split(" => ")[-1].rstrip("}")] = (
                0 if plus == "-" else int(plus),
                0 if minus == "-" else int(minus),
            )
        changes = []
        status_names = {"A": "added", "D": "removed", "M": "modified", "R": "renamed"}
        for line in self.out("diff", "--name-status", "-M", start, head).splitlines():
            parts = line.split("\t")
            code, previous = parts[0][0], None
            if code == "R":
                previous, filename = parts[1], parts[2]
            else:
                filename = parts[1]
            added, deleted = numstat.get(filename, (0, 0))
            changes.append(
                FileChange(
                    filename=filename,
                    status=status_names.get(code, "changed"),
                    additions=added,
                    deletions=deleted,
                    patch=self.file_patch(start, head, filename),
                    sha=None if code == "D" else self.object_sha(f"{head}:{filename}"),
                    previous_filename=previous,
                )
            )
        return changes

    def file_patch(self, base: str, head: str, path: str) -> str:
        """The hunks of one file's diff, without the file header lines, as GitHub shows `patch`."""
        text = self.out("diff", "--unified=3", base, head, "--", path)
        lines = text.splitlines()
        for index, line in enumerate(lines):
            if line.startswith("@@"):
                return "\n".join(lines[index:])
        return ""

    def diff_hunk_for(self, base: str, head: str, path: str, line: int, side: str) -> str | None:
        """The hunk text up to `line` if that line is part of the PR diff, else None."""
        start = self.merge_base(base, head) or base
        patch = self.file_patch(start, head, path)
        hunk: list[str] = []
        old_no = new_no = 0
        for text in patch.splitlines():
            match = _HUNK.match(text)
            if match:
                hunk = [text]
                old_no, new_no = int(match.group(1)), int(match.group(3))
                continue
            if not hunk:
                continue
            hunk.append(text)
            marker = text[:1]
            on_left = marker in (" ", "-")
            on_right = marker in (" ", "+")
            if side == "LEFT" and on_left and old_no == line:
                return "\n".join(hunk)
            if side != "LEFT" and on_right and new_no == line:
                return "\n".join(hunk)
            if on_left:
                old_no += 1
            if on_right:
                new_no += 1
        return None

    # -- merging ---------------------------------------------------------------------------

    def merge_tree(self, base: str, head: str) -> str | None:
        """The merged tree of two commits, or None on conflicts."""
        proc = self.git("merge-tree", "--write-tree", base, head, check=False)
        if proc.returncode != 0:
            return None
        return proc.stdout.decode().split("\n", 1)[0].strip()
