"""The sandbox the operator's settings describe, and the bot files it must never show."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from agents.sandbox import SandboxOptions, SandboxProvider
from agents.sandbox.egress_gateway import EgressAllowList
from agents.sandbox.identity import UidRange
from agents.sandbox.mounts import sqlite_files
from agents.sandbox.quota import DiskQuota
from bot.settings import Settings


def bot_state_paths(settings: Settings) -> list[Path]:
    """Everything the bot keeps on disk: hidden from commands wherever it lies.

    The data dir holds other workspaces, the raw delivery archive, the lexical index, Chroma and
    (by default) the SQLite database with its WAL and shared-memory files; the database, Chroma
    and the key may also live elsewhere. Listed even before they exist: the list is checked again
    for every command.
    """
    paths = [
        settings.data_dir,
        settings.effective_chroma_path,
        Path.cwd() / ".env",
        settings.data_dir / ".env",
    ]
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        paths += sqlite_files(Path(url.database).absolute())
    if settings.private_key_path is not None:
        paths.append(settings.private_key_path.absolute())
    return list(dict.fromkeys(paths))


def sandbox_options(settings: Settings) -> SandboxOptions:
    return SandboxOptions(
        backend=settings.sandbox,
        docker_image=settings.sandbox_image,
        memory_mb=settings.sandbox_memory_mb,
        cpus=settings.sandbox_cpus,
        pids=settings.sandbox_pids,
        tmp_mb=settings.sandbox_tmp_mb,
        quota=DiskQuota(
            workspace_mb=settings.sandbox_disk_mb, command_mb=settings.sandbox_command_disk_mb
        ),
        hidden_paths=[*bot_state_paths(settings), *settings.sandbox_hidden_paths],
        toolchains=settings.sandbox_toolchains,
        uids=UidRange(base=settings.sandbox_uid_base),
        egress=EgressAllowList().extended(
            tuple(settings.sandbox_setup_allow), tuple(settings.sandbox_setup_allow_private)
        ),
        docker_setup_network=settings.sandbox_setup_network,
        cache_root=settings.data_dir / "caches",
        cache_mb=settings.sandbox_cache_mb,
    )


def sandbox_provider(settings: Settings) -> SandboxProvider:
    return SandboxProvider(sandbox_options(settings))
