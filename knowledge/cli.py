"""`factory knowledge ...`: search and re-index from a terminal.

The lead mounts `make_knowledge_cli(open_service)` in `bot/cli.py`; `open_service` builds the
service from settings, and is only called when a command runs (so `--help` stays instant).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from knowledge.service import KnowledgeService


def make_knowledge_cli(open_service: Callable[[], KnowledgeService]) -> typer.Typer:
    app = typer.Typer(help="Search and index the knowledge store.", no_args_is_help=True)

    @app.command()
    def search(
        repo: Annotated[str, typer.Argument(help="Repository, owner/name.")],
        query: Annotated[str, typer.Argument(help="What to look for, e.g. an issue's text.")],
        k: Annotated[int, typer.Option("--k", "-k", min=1, help="How many files to list.")] = 10,
        context: Annotated[
            bool, typer.Option("--context", help="Print the full context an agent would get.")
        ] = False,
        token_budget: Annotated[int, typer.Option("--token-budget", min=1)] = 6000,
    ) -> None:
        """Rank the repository's files for QUERY, with scores and why each was chosen."""
        service = open_service()
        try:
            if context:
                retrieved = service.retriever.retrieve_sync(
                    repo, query, token_budget=token_budget, k_files=k
                )
                typer.echo(retrieved.render() or "Nothing found.")
                return
            ranked = service.retriever.rank_files(repo, query, k=k)
            if not ranked:
                typer.echo(f"No indexed files match in {repo}.")
                raise typer.Exit(code=1)
            for index, match in enumerate(ranked, 1):
                typer.echo(f"{index:>2}. {match.score:.4f}  {match.path}")
                for reason in match.reasons:
                    typer.echo(f"      - {reason}")
        finally:
            service.close()

    @app.command()
    def reindex(
        repo: Annotated[str, typer.Argument(help="Repository, owner/name.")],
        path: Annotated[
            Path,
            typer.Option(
                "--path",
                exists=True,
                file_okay=False,
                dir_okay=True,
                resolve_path=True,
                help="A checkout of the repository's default branch.",
            ),
        ],
        embed: Annotated[
            bool, typer.Option("--embed/--no-embed", help="Also compute embeddings (slower).")
        ] = True,
    ) -> None:
        """Index the checkout at --path as REPO's content (unchanged files are skipped)."""
        service = open_service()
        try:
            report = service.indexer.index_directory(repo, path, embed=embed)
        finally:
            service.close()
        typer.echo(
            f"{repo}: {report.files_seen} files read, {report.files_written} indexed, "
            f"{report.files_unchanged} unchanged, {report.files_removed} removed, "
            f"{len(report.skipped)} skipped; {report.chunks_written} chunks written, "
            f"{report.units_embedded} texts embedded, {report.pending_embeddings} files awaiting "
            f"embeddings ({report.lexical_seconds:.1f}s lexical, {report.embedding_seconds:.1f}s embedding)"
        )

    return app
