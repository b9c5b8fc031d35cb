"""The ``onebox`` command."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from onebox import __version__

app = typer.Typer(help="Onebox: private AI chat over your own documents.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
errors = Console(stderr=True)

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where Onebox keeps its database and secrets (env ONEBOX_DATA_DIR).",
        file_okay=False,
    ),
]


def load_settings(**overrides: Any) -> Any:
    from onebox.core.settings import Settings
    from onebox.llm.catalog import ModelCatalogError, load_catalog

    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        for problem in exc.errors():
            location = ".".join(str(part) for part in problem["loc"]) or "settings"
            errors.print(f"[red]Invalid configuration[/red] ({location}): {problem['msg']}")
        raise typer.Exit(2) from exc
    try:
        load_catalog(settings)  # fail here, clearly, rather than half-way through start-up
    except ModelCatalogError as exc:
        errors.print(f"[red]Invalid models file[/red]: {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc
    return settings


@app.command()
def version() -> None:
    """Print the Onebox version."""
    console.print(__version__)


@app.command()
def serve(
    data_dir: DataDirOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address (env ONEBOX_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env ONEBOX_PORT).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Server processes sharing the port (env ONEBOX_WORKERS); more than one "
            "needs a shared vector backend and Redis rate limits.",
        ),
    ] = None,
) -> None:
    """Serve the web UI and API."""
    from onebox import serving

    settings = load_settings(data_dir=data_dir, host=host, port=port, workers=workers)
    count = settings.workers
    problems = serving.workers_problems(settings, count)
    if problems:
        errors.print(f"[red]{count} workers cannot share this configuration[/red]:")
        for problem in problems:
            errors.print(f"  - {problem}", markup=False, highlight=False)
        raise typer.Exit(2)
    for note in serving.workers_warnings(settings, count):
        errors.print(f"[yellow]Note[/yellow]: {note}")
    processes = f", {count} workers" if count > 1 else ""
    console.print(
        f"Onebox {__version__} starting on [bold]http://{settings.host}:{settings.port}[/bold] "
        f"(data in {settings.data_dir.resolve()}{processes}); loading the model…"
    )
    serving.run(settings, count)


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDirOption = None) -> None:
    """Apply database migrations (also done automatically at start)."""
    from onebox.core.db import create_engine
    from onebox.core.migrate import upgrade

    settings = load_settings(data_dir=data_dir)

    async def run() -> None:
        settings.prepare_data_dir()
        engine = create_engine(settings.resolved_database_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    console.print("Database is up to date.")


@app.command()
def chat(
    data_dir: DataDirOption = None,
    conversation: Annotated[
        str | None, typer.Option(help="Continue this conversation id instead of a new one.")
    ] = None,
    collection: Annotated[
        list[str] | None,
        typer.Option(
            "--collection", "-c", help="Answer from this collection, citing it (repeatable)."
        ),
    ] = None,
    user: Annotated[str | None, typer.Option(help="Owner's email (default: admin).")] = None,
) -> None:
    """Chat in the terminal, through the same turn pipeline as the web UI."""
    from onebox.terminal_chat import run_terminal_chat

    settings = load_settings(data_dir=data_dir)
    try:
        asyncio.run(run_terminal_chat(settings, conversation, console, collection or [], user))
    except KeyboardInterrupt:
        console.print()


def _register_account_commands() -> None:
    from onebox.users.cli import register

    register(app, load_settings, DataDirOption)


_register_account_commands()


def _register_document_commands() -> None:
    from onebox.documents.cli import register

    register(app, load_settings, DataDirOption)


_register_document_commands()


def _register_bench_commands() -> None:
    from onebox.loadtest.cli import register

    register(app)


_register_bench_commands()


@app.command()
def worker(data_dir: DataDirOption = None) -> None:
    """Run a Celery worker for background jobs (ONEBOX_JOBS_BACKEND=celery)."""
    from onebox.jobs.celery_app import run_worker

    settings = load_settings(data_dir=data_dir)
    if settings.jobs_backend != "celery":
        errors.print(
            "[yellow]ONEBOX_JOBS_BACKEND is not 'celery': the app runs jobs itself; "
            "starting a Celery worker anyway[/yellow]"
        )
    run_worker(settings)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
