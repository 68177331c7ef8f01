"""A real ``git`` clone an agent works in, pushed back as the app's bot account.

The installation token reaches git only through a credential helper that reads it from an
environment variable set for that one subprocess, and only answers for the clone's own host;
it is never written to ``.git/config``, a remote URL, a log line or an error message. The
clone is bounded in size and each git command in time, and the directory is removed when the
``async with`` block ends.

Agents' commands run in the work tree, so they can edit ``.git`` too. Every git command here
therefore runs with hooks and fsmonitor switched off, and ``.git/config`` is put back to what
this class wrote before each command, so a planted ``insteadOf`` or credential helper cannot
redirect the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import tempfile
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

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
# Settings on every git command: nothing the work tree can plant runs on the host.
_SAFE_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "commit.gpgSign=false",
    "credential.helper=",  # empty first: drops any helper configured elsewhere
)
_PASSED_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
)


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
        self._host = parts.netloc
        self._token = token
        self.author = author
        self._root = root
        self.max_bytes = max_bytes
        self._network_timeout = network_timeout
        self._local_timeout = local_timeout
        self._user_agent = user_agent
        self._dir: Path | None = None
        self._config: bytes | None = None
        self.branch: str | None = None

    @property
    def path(self) -> Path:
        """The work tree (exists between ``__aenter__`` and ``__aexit__``)."""
        if self._dir is None:
            raise RuntimeError("the workspace is not open; use `async with`")
        return self._dir / "repo"

    async def __aenter__(self) -> Workspace:
        self._root.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="ws-", dir=self._root))
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
            ("clone", *options, "--no-tags", "--quiet", self.clone_url, str(self.path)),
            timeout=self._network_timeout,
            cwd=self.path.parent,
            watch=self.path / ".git" / "objects",
        )
        await self._ensure_within_limit()
        await self.git("config", "user.name", self.author.name)
        await self.git("config", "user.email", self.author.email)
        self._config = (self.path / ".git" / "config").read_bytes()

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
            # --no-track: tracking would write the branch into .git/config, which the next
            # command would take for tampering (and warn about) before restoring it.
            await self.git("checkout", "--quiet", "--no-track", "-B", branch, start, network=True)
        self.branch = branch
        return await self.head()

    async def commit_all(self, message: str) -> str | None:
        """Commits every change in the work tree as the bot; None when nothing changed."""
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
        await self.git("push", "--quiet", "origin", f"HEAD:refs/heads/{self.branch}", network=True)
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
        """Runs git in the work tree and returns its stdout.

        Any command may need the token: in a partial clone, reading an old file version
        fetches it. ``network`` only picks the longer timeout.
        """
        limit = timeout or (self._network_timeout if network else self._local_timeout)
        return await self._run(args, env=env, timeout=limit)

    # -- internals -------------------------------------------------------------------------

    async def _index_matches_head(self) -> bool:
        try:
            await self.git("diff", "--cached", "--quiet")
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
        size = await asyncio.to_thread(_tree_size, self.path)
        if size > self.max_bytes:
            raise WorkspaceTooLarge(f"workspace is {size} bytes, over the {self.max_bytes} limit")

    def _restore_config(self) -> None:
        if self._config is None:
            return  # not cloned yet
        git_dir = self.path / ".git"
        if git_dir.is_symlink() or not git_dir.is_dir():
            raise GitError("the work tree replaced its .git directory; refusing to run git")
        config = git_dir / "config"
        if config.is_symlink() or not config.is_file() or config.read_bytes() != self._config:
            logger.warning("workspace .git/config was changed in the work tree; restoring it")
            # Unlink first: writing through a planted symlink would overwrite its target.
            config.unlink(missing_ok=True)
            config.write_bytes(self._config)

    async def _run(
        self,
        args: tuple[str, ...],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        watch: Path | None = None,
    ) -> str:
        self._restore_config()
        token = await self._token()
        config = (
            *_SAFE_CONFIG,
            f"credential.helper={_CREDENTIAL_HELPER}",
            f"http.userAgent={self._user_agent}",
        )
        command = ["git", *(part for item in config for part in ("-c", item)), *args]
        process_env = {k: v for k, v in os.environ.items() if k in _PASSED_ENV}
        process_env.update(
            {
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                _TOKEN_ENV: token,
                _HOST_ENV: self._host,
            }
        )
        process_env.update(env or {})
        proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=str(cwd or self.path),
            env=process_env,
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
