"""The ``factory`` command line.

Each command is a small function registered below; adding one is one line
(``app.command("name")(function)`` or ``app.add_typer(sub_app, name="name")``). Keep heavy imports
(FastAPI, uvicorn, arq, chromadb, torch, anthropic) inside the functions: ``factory --help`` must
stay fast, and a test checks that importing this module does not pull them in.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Annotated, Any

import typer

from bot.settings import Settings, SettingsError, load_settings
from knowledge.cli import make_knowledge_cli


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _with_logging(settings: Settings) -> None:
    from bot.logging import configure_logging, known_secrets

    try:
        configure_logging(settings, secrets=known_secrets(settings))
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _run_roles(*, http: bool, worker: bool, migrate: bool, embedded_redis: bool) -> None:
    settings = _settings()
    _with_logging(settings)
    from bot.runner import Roles, StartupError, run

    roles = Roles(http=http, worker=worker, migrate=migrate, allow_embedded_redis=embedded_redis)
    try:
        asyncio.run(run(settings, roles, out=sys.stdout))
    except StartupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _complete(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


MigrateOption = Annotated[
    bool, typer.Option("--migrate/--no-migrate", help="Apply database migrations at start.")
]


def up(migrate: MigrateOption = True) -> None:
    """Run the whole bot in one process: HTTP server and worker, on embedded defaults.

    Uses Redis at FACTORY_REDIS_URL, or starts an embedded one when that is unset and nothing
    answers at the default; uses a SQLite database in the data dir unless FACTORY_DATABASE_URL
    is set. Stops cleanly on Ctrl-C or SIGTERM.
    """
    _run_roles(http=True, worker=True, migrate=migrate, embedded_redis=True)


def serve(migrate: MigrateOption = False) -> None:
    """Run only the HTTP server (webhooks, /healthz, /readyz); scale out with `factory worker`."""
    _run_roles(http=True, worker=False, migrate=migrate, embedded_redis=False)


def worker(migrate: MigrateOption = False) -> None:
    """Run only an arq worker that executes queued jobs; start as many as you like."""
    _run_roles(http=False, worker=True, migrate=migrate, embedded_redis=False)


def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations (to the latest revision by default)."""
    settings = _settings()
    _with_logging(settings)
    from sqlalchemy.exc import SQLAlchemyError

    from bot.db.migrate import upgrade
    from bot.runner import public_database_url

    shown = public_database_url(settings.effective_database_url)
    try:
        now = _complete(upgrade(settings.effective_database_url, revision))
    except (OSError, SQLAlchemyError) as exc:
        typer.echo(f"error: database {shown} cannot be migrated: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{shown} is at revision {now}")


def doctor() -> None:
    """Check settings, Redis, database, Chroma, the embedding model and GitHub App credentials."""
    from bot.doctor import diagnose, format_report, has_problems

    checks = _complete(diagnose())
    typer.echo(format_report(checks))
    if has_problems(checks):
        raise typer.Exit(1)


def config() -> None:
    """Print every setting: its environment variable, default and meaning (Markdown)."""
    from bot.config_reference import markdown_table

    typer.echo(markdown_table())


def replay(
    target: Annotated[str, typer.Argument(help="A recorded delivery id, or a payload .json file.")],
    event: Annotated[
        str | None,
        typer.Option("--event", help="The X-GitHub-Event name (needed for a payload file)."),
    ] = None,
) -> None:
    """Run a recorded or given delivery through ingress again (no signature check), for debugging."""
    from pathlib import Path

    settings = _settings()
    _with_logging(settings)

    async def go() -> int:
        from bot.services import build_services
        from webhooks.replay import ReplayError
        from webhooks.replay import replay as run_replay

        services = await build_services(settings)
        try:
            path = Path(target)
            is_file = target.endswith(".json") or path.is_file()
            outcome = await run_replay(
                settings=settings,
                db=services.db,
                arq=services.redis,
                delivery_id=None if is_file else target,
                payload_path=path if is_file else None,
                event=event,
            )
        except ReplayError as exc:
            typer.echo(f"error: {exc}", err=True)
            return 1
        finally:
            await services.aclose()
        result = outcome.outcome
        typer.echo(f"replayed {outcome.original} as {outcome.delivery_id}: {result.status.value}")
        for job in result.jobs:
            typer.echo(f"  queued {job}")
        if result.reason:
            typer.echo(f"  reason: {result.reason}")
        return 0

    code = _complete(go())
    if code:
        raise typer.Exit(code)


def _open_knowledge() -> Any:
    settings = _settings()
    from bot.composition import open_knowledge

    return open_knowledge(settings)


app = typer.Typer(
    name="factory",
    help="Agent Factory: a GitHub App that turns labelled issues into reviewed pull requests.",
    no_args_is_help=True,
    add_completion=False,
    # Rich tracebacks print local variables, which may hold secrets.
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Manage the state store's schema.", no_args_is_help=True)

app.command("up")(up)
app.command("serve")(serve)
app.command("worker")(worker)
app.command("doctor")(doctor)
app.command("config")(config)
app.command("replay")(replay)
app.add_typer(db_app, name="db")
app.add_typer(make_knowledge_cli(_open_knowledge), name="knowledge")
db_app.command("upgrade")(db_upgrade)


def main() -> None:
    app()
