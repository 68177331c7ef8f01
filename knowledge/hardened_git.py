"""How the bot runs git on a checkout whose work tree it does not trust.

Repository content and the model's commands control the work tree; git reads code to run from
several places a work tree can reach: hooks, ``core.fsmonitor``, filter/diff/merge drivers named
by attributes, nested repositories' own configuration, submodule URLs (``ext::``), the user's and
the system's configuration. Every bot git command therefore names its git directory and work
tree explicitly (no discovery, so a planted ``.git`` is never read), runs with the settings
below on its command line (they also reach any git process it starts), reads no system or
global configuration, and gets a minimal environment.

It lives here, the lowest layer that runs git, so that ``agents.workspace`` and the knowledge
indexer share one list instead of two that drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

# Each is checked against the installed git in tests/security/test_git_hardening.py.
HARDENED_CONFIG: tuple[str, ...] = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    # The host user's attributes and ignore files are not the repository's business either.
    "core.attributesFile=/dev/null",
    "core.excludesFile=/dev/null",
    "core.useReplaceRefs=false",
    "submodule.recurse=false",
    "diff.ignoreSubmodules=all",
    "status.submoduleSummary=false",
    "fetch.recurseSubmodules=false",
    "push.recurseSubmodules=no",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    # A background `gc --auto` would outlive the command's timeout.
    "gc.auto=0",
    "maintenance.auto=false",
    # The sandbox may own the work tree (another uid); the explicit git dir is ours.
    "safe.directory=*",
    "credential.helper=",  # empty first: drops any helper configured elsewhere
    # Callers allow the one protocol they use (protocol.<scheme>.allow=always, given later);
    # the named ones are refused even where a configuration file allows them by name.
    "protocol.allow=never",
    "protocol.ext.allow=never",
    "protocol.file.allow=never",
    "protocol.ssh.allow=never",
    "protocol.git.allow=never",
)

# Variables git may need from the bot's environment; everything else (GIT_*, the bot's secrets,
# HOME and so the user's ~/.netrc and ~/.config/git) stays out.
_PASSED_ENV = (
    "PATH",
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


def git_argv(
    *args: str,
    git_dir: Path | None,
    work_tree: Path | None,
    protocols: Iterable[str] = (),
    config: Iterable[str] = (),
) -> list[str]:
    """``git`` with the hardened settings, the only ``protocols`` allowed, then ``config``
    (later settings win), the explicit git dir and work tree, and ``args``."""
    settings = [
        *HARDENED_CONFIG,
        *(f"protocol.{scheme}.allow=always" for scheme in protocols),
        *config,
    ]
    argv = ["git", *(part for item in settings for part in ("-c", item))]
    if git_dir is not None:
        argv.append(f"--git-dir={git_dir}")
    if work_tree is not None:
        argv.append(f"--work-tree={work_tree}")
    return [*argv, *args]


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for git: no system or global config, no prompts."""
    env = {key: value for key, value in os.environ.items() if key in _PASSED_ENV}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_NO_REPLACE_OBJECTS": "1",
        }
    )
    env.update(extra or {})
    return env


def checkout_git_dir(work_tree: Path) -> Path | None:
    """The git dir of a checkout: its ``.git`` directory, or where its ``.git`` file points.

    Only for checkouts nothing untrusted has written to yet (a fresh clone, a maintainer's
    directory); a workspace an agent worked in knows its git dir and must not ask its work tree.
    """
    dot_git = work_tree / ".git"
    if dot_git.is_symlink():
        return None
    if dot_git.is_dir():
        return dot_git
    if not dot_git.is_file():
        return None
    try:
        line = dot_git.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not line.startswith("gitdir:"):
        return None
    target = Path(line.removeprefix("gitdir:").strip())
    return target if target.is_absolute() else work_tree / target
