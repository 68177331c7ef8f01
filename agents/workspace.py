"""A real ``git`` clone an agent works in, pushed back as the app's bot account.

Layout: ``<dir>/repo`` is the work tree (``path``) and ``<dir>/git`` the git directory
(``git_dir``), cloned with ``--separate-git-dir``. Agents' commands run in the sandbox with only
the work tree writable, so they may write anything there, ``.git`` included (the clone leaves a
``gitdir:`` file in it, so git run inside the sandbox still finds the repository), but they can
never change the git directory. Every git command here names the git dir and the work tree
explicitly, so whatever a command leaves at ``<work tree>/.git`` is never read, and runs with
``knowledge.hardened_git``'s settings: no hooks, no fsmonitor, no configuration but the clone's
own (so no filter, diff or merge driver a ``.gitattributes`` could select), no submodule
recursion, only the clone URL's protocol.

Submodules and LFS: ``.gitmodules`` is never acted on (no ``submodule update``, no fetching of
its URLs, so an ``ext::`` or ``file://`` URL does nothing), and no LFS filter is configured, so
LFS pointer files stay pointer files. A nested repository (``sub/.git``, a directory or a file)
that a command creates is removed before committing, with a warning: ``git add`` would record it
as a gitlink, and git run inside it would read its configuration.

The installation token reaches git only for the commands that talk to the remote (clone,
fetch, ls-remote, push, and a checkout, which may fetch file versions the partial clone left on
the server): through a credential helper that reads it from an environment variable set for
that one subprocess and answers only for the clone's own host. It is never written to the git
directory, a remote URL, a command line, a log line or an error message. The clone is bounded in
size and each git command in time, and the directory is removed when the ``async with`` block
ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import stat
import tempfile
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from knowledge.hardened_git import git_argv, git_env

logger = logging.getLogger(__name__)

TokenSource = Callable[[], Awaitable[str]]

DEFAULT_MAX_BYTES = 1 << 30
_SLUG_MAX = 40
_SIZE_POLL_S = 0.5
_TOKEN_ENV = "FACTORY_GIT_TOKEN"
_HOST_ENV = "FACTORY_GIT_HOST"
# Answers `get` with the token only when git asks about the clone's own host.
_CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || return 0; h=; '
    'while IFS= read -r l; do case "$l" in host=*) h="${l#host=}";; esac; done; '
    f'test -n "$h" && test "$h" = "${_HOST_ENV}" || return 0; '
    f"printf 'username=x-access-token\\npassword=%s\\n' \"${_TOKEN_ENV}\"; }}; f"
)
# Others (the sandbox's uid) may pass through the workspace directory to the work tree and the
# git dir they are given, but not list it.
_DIR_MODE = 0o711


class GitError(Exception):
    """A git command failed; the message carries git's stderr with credentials removed."""


class WorkspaceTooLarge(GitError):
    pass


@dataclass(frozen=True, slots=True)
class GitAuthor:
    """For the app: name ``<slug>[bot]``, email ``<user id>+<slug>[bot]@users.noreply...``."""

    name: str
    email: str


@dataclass(frozen=True, slots=True)
class PushResult:
    branch: str
    sha: str
    pushed: bool  # False when the remote branch already pointed at ``sha``


def branch_name(issue_number: int, title: str) -> str:
    """``factory/issue-<n>-<slug>``: the slug is the title in ascii, at most 40 characters."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    if len(slug) > _SLUG_MAX:
        cut = slug[:_SLUG_MAX]
        slug = cut.rsplit("-", 1)[0] if "-" in cut else cut
    return f"factory/issue-{issue_number}-{slug}" if slug else f"factory/issue-{issue_number}"


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    """git's stderr without the token or any credentials embedded in URLs."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return re.sub(r"(https?://)[^/@\s]+@", r"\1***@", text)


def _tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue  # git removes temporary files while we count
    return total


def _remove_nested_git(work_tree: Path) -> list[str]:
    """Deletes every ``.git`` below the top of the work tree (any case, so ``.GIT`` too:
    git refuses such paths); returns their relative paths. Symlinks are removed, not followed."""
    removed: list[str] = []
    for root, dirs, files in os.walk(work_tree):
        top = Path(root) == work_tree
        for name in [*dirs, *files]:
            if name.casefold() != ".git" or (top and name == ".git"):
                continue
            entry = Path(root, name)
            if stat.S_ISDIR(entry.lstat().st_mode):
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry.relative_to(work_tree).as_posix())
        dirs[:] = [d for d in dirs if d.casefold() != ".git"]
    return sorted(removed)


class Workspace:
    """``async with Workspace(...) as ws: await ws.clone(); ...``; removed on exit."""

    def __init__(
        self,
        clone_url: str,
        token: TokenSource,
        author: GitAuthor,
        *,
        root: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        network_timeout: float = 300.0,
        local_timeout: float = 60.0,
        user_agent: str = "agent-factory",
    ) -> None:
        parts = urlsplit(clone_url)
        if parts.scheme not in ("https", "http") or parts.username or parts.password:
            raise ValueError("clone_url must be a plain http(s) URL without credentials")
        self.clone_url = clone_url
        self._scheme = parts.scheme
        self._host = parts.netloc
        self._token = token
        self.author = author
        self._root = root
        self.max_bytes = max_bytes
        self._network_timeout = network_timeout
        self._local_timeout = local_timeout
        self._user_agent = user_agent
        self._dir: Path | None = None
        self.branch: str | None = None

    @property
    def path(self) -> Path:
        """The work tree (exists between ``__aenter__`` and ``__aexit__``)."""
        return self._open_dir() / "repo"

    @property
    def git_dir(self) -> Path:
        """The git directory: the bot's alone; a sandbox may only get it read-only."""
        return self._open_dir() / "git"

    def _open_dir(self) -> Path:
        if self._dir is None:
            raise RuntimeError("the workspace is not open; use `async with`")
        return self._dir

    async def __aenter__(self) -> Self:
        self._root.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="ws-", dir=self._root))
        self._dir.chmod(_DIR_MODE)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.cleanup()

    async def cleanup(self) -> None:
        if self._dir is not None:
            directory, self._dir = self._dir, None
            await asyncio.to_thread(shutil.rmtree, directory, True)

    # -- operations ----------------------------------------------------------------------

    async def clone(self, *, partial: bool = True) -> None:
        """Clones the repository; ``partial`` leaves old file versions on the server until a
        command here needs them (``--filter=blob:none``)."""
        options = ["--filter=blob:none"] if partial else []
        await self._run(
            (
                "clone",
                f"--separate-git-dir={self.git_dir}",
                "--template=",  # no sample hooks or other files from the host's templates
                *options,
                "--no-tags",
                "--quiet",
                "--",
                self.clone_url,
                str(self.path),
            ),
            timeout=self._network_timeout,
            network=True,
            explicit_dirs=False,
            cwd=self._open_dir(),
            watch=self.git_dir / "objects",
        )
        await self._ensure_within_limit()
        await self.git("config", "user.name", self.author.name)
        await self.git("config", "user.email", self.author.email)

    async def checkout_branch(self, branch: str, *, base: str | None = None) -> str:
        """Switches to ``branch`` and returns its head commit.

        If an earlier attempt already pushed ``branch``, work resumes from it, so a retried
        job adds to that branch instead of committing the same change a second time.
        Otherwise the branch starts at ``base`` (default: the cloned default branch).
        """
        if await self._remote_sha(branch) is not None:
            await self.git("fetch", "--quiet", "origin", f"refs/heads/{branch}", network=True)
            await self.git("checkout", "--quiet", "-B", branch, "FETCH_HEAD", network=True)
        else:
            start = f"origin/{base}" if base else "HEAD"
            await self.git("checkout", "--quiet", "--no-track", "-B", branch, start, network=True)
        self.branch = branch
        return await self.head()

    async def commit_all(self, message: str) -> str | None:
        """Commits every change in the work tree as the bot; None when nothing changed."""
        nested = await asyncio.to_thread(_remove_nested_git, self.path)
        if nested:
            logger.warning(
                "removed nested git repositories from the work tree before committing: %s",
                ", ".join(nested),
            )
        await self.git("add", "--all")
        if await self._index_matches_head():
            return None
        await self._ensure_within_limit()
        env = {
            "GIT_AUTHOR_NAME": self.author.name,
            "GIT_AUTHOR_EMAIL": self.author.email,
            "GIT_COMMITTER_NAME": self.author.name,
            "GIT_COMMITTER_EMAIL": self.author.email,
        }
        await self.git("commit", "--quiet", "--no-verify", "-m", message, env=env)
        return await self.head()

    async def push(self) -> PushResult:
        """Pushes the current branch; a no-op when the remote already has this commit."""
        if self.branch is None:
            raise GitError("no branch checked out; call checkout_branch first")
        sha = await self.head()
        if await self._remote_sha(self.branch) == sha:
            return PushResult(self.branch, sha, pushed=False)
        refspec = f"HEAD:refs/heads/{self.branch}"
        await self.git("push", "--quiet", "--no-verify", "origin", refspec, network=True)
        return PushResult(self.branch, sha, pushed=True)

    async def head(self) -> str:
        return (await self.git("rev-parse", "HEAD")).strip()

    async def git(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        network: bool = False,
        timeout: float | None = None,
    ) -> str:
        """Runs git on the clone (in the work tree) and returns its stdout.

        ``network`` is for commands that talk to the remote, including those that read a file
        version the partial clone left on the server (``show`` of an old commit, a checkout):
        only they get the token, and the longer timeout. Every other command runs without it
        and may not fetch.
        """
        limit = timeout or (self._network_timeout if network else self._local_timeout)
        return await self._run(args, env=env, network=network, timeout=limit)

    # -- internals -------------------------------------------------------------------------

    async def _index_matches_head(self) -> bool:
        try:
            await self.git("diff", "--cached", "--quiet", "--no-ext-diff", "--no-textconv")
        except GitError:
            return False
        return True

    async def _remote_sha(self, branch: str) -> str | None:
        out = await self.git("ls-remote", "--heads", "origin", f"refs/heads/{branch}", network=True)
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{branch}":
                return sha
        return None

    async def _ensure_within_limit(self) -> None:
        size = await asyncio.to_thread(_tree_size, self._open_dir())
        if size > self.max_bytes:
            raise WorkspaceTooLarge(f"workspace is {size} bytes, over the {self.max_bytes} limit")

    async def _run(
        self,
        args: tuple[str, ...],
        *,
        timeout: float,
        network: bool,
        env: Mapping[str, str] | None = None,
        explicit_dirs: bool = True,
        cwd: Path | None = None,
        watch: Path | None = None,
    ) -> str:
        if network:
            token = await self._token()
            config: tuple[str, ...] = (
                f"credential.helper={_CREDENTIAL_HELPER}",
                f"http.userAgent={self._user_agent}",
            )
            secrets = {_TOKEN_ENV: token, _HOST_ENV: self._host}
        else:
            token, config = "", ()
            # Git 2.45+ refuses to fetch missing objects; older git fails without the token.
            secrets = {"GIT_NO_LAZY_FETCH": "1"}
        command = git_argv(
            *args,
            git_dir=self.git_dir if explicit_dirs else None,
            work_tree=self.path if explicit_dirs else None,
            protocols=(self._scheme,),
            config=config,
        )
        proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=str(cwd or self.path),
            env=git_env({**(env or {}), **secrets}),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # so a timeout can stop git's helper processes too
        )
        stdout, stderr = await self._wait(proc, args[0], timeout, watch)
        if proc.returncode != 0:
            detail = _scrub(stderr.decode(errors="replace").strip(), (token,))
            raise GitError(f"git {args[0]} failed (exit {proc.returncode}): {detail[-2000:]}")
        return stdout.decode(errors="replace")

    async def _wait(
        self, proc: asyncio.subprocess.Process, name: str, timeout: float, watch: Path | None
    ) -> tuple[bytes, bytes]:
        """The process's output; it is killed on timeout or when ``watch`` grows too big."""
        communicate = asyncio.ensure_future(proc.communicate())
        watcher = asyncio.ensure_future(self._watch_size(watch)) if watch else None
        try:
            done, _ = await asyncio.wait(
                {communicate, *([watcher] if watcher else [])},
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if communicate in done:
                return communicate.result()
            if watcher is not None and watcher in done:
                watcher.result()  # raises WorkspaceTooLarge
            raise GitError(f"git {name} timed out after {timeout:.0f}s")
        finally:
            if watcher is not None:
                watcher.cancel()
            if not communicate.done():
                _kill(proc)
                await communicate

    async def _watch_size(self, path: Path) -> None:
        """Raises once ``path`` grows past the limit (the caller then stops git)."""
        while True:
            await asyncio.sleep(_SIZE_POLL_S)
            size = await asyncio.to_thread(_tree_size, path)
            if size > self.max_bytes:
                raise WorkspaceTooLarge(f"clone passed {self.max_bytes} bytes ({size}); stopped")


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
