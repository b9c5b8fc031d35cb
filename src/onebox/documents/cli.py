"""``onebox ingest`` (and the registration of ``onebox ask`` and ``onebox collections``): the
same services as the HTTP API, run in this process against the configured database and
index."""

# No ``from __future__ import annotations``: typer reads the option annotations at run time.

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onebox.cli_common import CliError, console, resolve_owner, run
from onebox.core.settings import Settings
from onebox.documents.ingestion.parsing import ParseError, expand_upload
from onebox.documents.ingestion.parsing.base import SourceFile
from onebox.documents.schemas import CollectionCreate
from onebox.documents.service import DocumentService, parse_limits
from onebox.jobs.models import Job, JobStatus

collections_app = typer.Typer(help="Document collections.", no_args_is_help=True)


def walk(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path).parts
                if child.is_file() and not any(part.startswith(".") for part in relative):
                    yield child
        elif path.is_file():
            yield path
        else:
            raise CliError(f"{path} does not exist")


def read_sources(
    paths: list[Path], settings: Settings
) -> tuple[list[SourceFile], list[str], list[tuple[str, str]]]:
    """Files to ingest (zips expanded), their absolute paths, and failures with reasons."""
    files: list[SourceFile] = []
    uris: list[str] = []
    failures: list[tuple[str, str]] = []
    limits = parse_limits(settings)
    for path in walk(paths):
        try:
            if path.stat().st_size > settings.max_upload_bytes:
                limit_mb = settings.max_upload_bytes // (1024 * 1024)
                raise ParseError(f"{path.name} is larger than the limit of {limit_mb} MB")
            expanded = expand_upload(path.name, path.read_bytes(), limits)
        except (ParseError, OSError) as exc:
            failures.append((str(path), str(exc)))
            continue
        files.extend(expanded.files)
        uris.extend(str(path.resolve()) for _ in expanded.files)
        failures.extend((f"{path}:{name}", reason) for name, reason in expanded.skipped)
    return files, uris, failures


async def ingest(
    settings: Settings, paths: list[Path], collection_name: str, user: str | None, create: bool
) -> int:
    from onebox.jobs.factory import build_dispatcher
    from onebox.jobs.service import wait_for_jobs
    from onebox.jobs.standalone import open_job_services

    started = time.monotonic()
    files, uris, failures = read_sources(paths, settings)
    async with open_job_services(settings) as services:
        sessionmaker = services.sessionmaker
        owner = await resolve_owner(sessionmaker, user)
        async with sessionmaker() as session:
            service = DocumentService(session, settings)
            collection = await service.repository.collection_by_name(owner, collection_name)
            if collection is None:
                if not create:
                    raise CliError(f"No collection named {collection_name!r} (drop --no-create)")
                collection = await service.create_collection(
                    owner, CollectionCreate(name=collection_name)
                )
            added = await service.add_files(
                owner, collection, files, source="path", source_uris=uris
            )
            await session.commit()
        failures.extend((s.filename, s.reason) for s in added.skipped)
        names = {
            job_id: d.filename for job_id, d in zip(added.job_ids, added.documents, strict=False)
        }
        jobs: list[Job] = []
        if added.job_ids:
            dispatcher = build_dispatcher(settings, services)
            await dispatcher.start()
            try:
                dispatcher.notify(added.job_ids)
                jobs = await _follow(sessionmaker, added.job_ids, names, wait_for_jobs)
            finally:
                await dispatcher.close()
        async with sessionmaker() as session:
            service = DocumentService(session, settings)
            current = [await service.repository.document_for_job(d.id) for d in added.documents]
            documents = await service.documents_out([d for d in current if d is not None])
    chunks = sum(d.chunk_count for d in documents)
    failures.extend(
        (names[job.id], job.error or "failed") for job in jobs if job.status == JobStatus.FAILED
    )
    _summary(
        collection_name,
        ready=sum(1 for job in jobs if job.status == JobStatus.DONE),
        duplicates=len(added.duplicates),
        chunks=chunks,
        failures=failures,
        seconds=time.monotonic() - started,
    )
    return 1 if failures else 0


async def _follow(
    sessionmaker: async_sessionmaker[AsyncSession],
    job_ids: list[str],
    names: dict[str, str],
    wait: Callable[..., Any],
) -> list[Job]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[stage]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        overall = progress.add_task("Ingesting", total=len(job_ids), stage="")

        def update(jobs: list[Job]) -> None:
            finished = [j for j in jobs if j.status in (JobStatus.DONE, JobStatus.FAILED)]
            running = [j for j in jobs if j.status == JobStatus.RUNNING]
            fraction = len(finished) + sum(j.progress for j in running)
            stage = f"{names.get(running[0].id, '')}: {running[0].stage}" if running else ""
            progress.update(overall, completed=fraction, stage=stage[:80])

        jobs: list[Job] = await wait(sessionmaker, job_ids, on_update=update)
        progress.update(overall, completed=len(job_ids), stage="")
    return jobs


def _summary(
    collection: str,
    *,
    ready: int,
    duplicates: int,
    chunks: int,
    failures: list[tuple[str, str]],
    seconds: float,
) -> None:
    table = Table(title=f"Ingested into {collection!r}", show_header=False)
    table.add_row("Files ready", str(ready))
    table.add_row("Already present", str(duplicates))
    table.add_row("Passages (chunks)", str(chunks))
    table.add_row("Failed", str(len(failures)))
    table.add_row("Time", f"{seconds:.1f} s")
    console.print(table)
    for name, reason in failures:
        console.print(f"[red]✗[/red] {name}: {reason}", highlight=False, markup=True)


def register(app: typer.Typer, load_settings: Callable[..., Settings], data_dir: Any) -> None:
    from onebox.documents.cli_ask import ask_command
    from onebox.documents.cli_collections import register_collections

    @app.command("ingest")
    def ingest_command(
        paths: Annotated[list[Path], typer.Argument(help="Files or folders (zips expand).")],
        collection: Annotated[str, typer.Option("--collection", "-c", help="Collection name.")],
        user: Annotated[str | None, typer.Option(help="Owner's email (default: admin).")] = None,
        create: Annotated[bool, typer.Option(help="Create the collection if missing.")] = True,
        data_dir: data_dir = None,
    ) -> None:
        """Parse, chunk, embed and index files into a collection, with progress."""
        settings = load_settings(data_dir=data_dir)
        code = run(ingest(settings, paths, collection, user, create))
        raise typer.Exit(code)

    app.command("ask")(ask_command(load_settings, data_dir))
    register_collections(app, load_settings, data_dir)
