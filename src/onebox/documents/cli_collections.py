"""``onebox collections list|create|delete``."""

# No ``from __future__ import annotations``: typer reads the option annotations at run time.

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from onebox.cli_common import CliError, console, open_database, resolve_owner, run
from onebox.core.settings import Settings
from onebox.documents.schemas import CollectionCreate
from onebox.documents.service import DocumentService


async def _list(settings: Settings, user: str | None) -> None:
    async with open_database(settings) as sessionmaker:
        owner = await resolve_owner(sessionmaker, user)
        async with sessionmaker() as session:
            items = await DocumentService(session, settings).list_collections(owner)
    table = Table("Name", "Documents", "Passages", "Description", "Id")
    for item in items:
        table.add_row(
            item.name,
            str(item.document_count),
            str(item.chunk_count),
            item.description,
            item.id,
        )
    console.print(table if items else "No collections yet.")


async def _create(settings: Settings, name: str, description: str, user: str | None) -> None:
    async with open_database(settings) as sessionmaker:
        owner = await resolve_owner(sessionmaker, user)
        async with sessionmaker() as session:
            collection = await DocumentService(session, settings).create_collection(
                owner, CollectionCreate(name=name, description=description)
            )
            await session.commit()
    console.print(f"Created collection {collection.name!r} ({collection.id})")


async def _delete(settings: Settings, name: str, user: str | None) -> None:
    from onebox.jobs.standalone import open_job_services

    async with open_job_services(settings) as services:
        owner = await resolve_owner(services.sessionmaker, user)
        async with services.sessionmaker() as session:
            service = DocumentService(session, settings)
            collection = await service.repository.collection_by_name(owner, name)
            if collection is None:
                raise CliError(f"No collection named {name!r}")
            removed = await service.delete_collection(owner, collection.id)
            await session.commit()
        await services.index.delete_documents(removed)
    console.print(f"Deleted collection {name!r} and its {len(removed)} documents")


def register_collections(
    app: typer.Typer, load_settings: Callable[..., Settings], data_dir: Any
) -> None:
    collections = typer.Typer(help="Document collections.", no_args_is_help=True)
    app.add_typer(collections, name="collections")
    UserOption = Annotated[str | None, typer.Option(help="Owner's email (default: admin).")]

    @collections.command("list")
    def list_command(
        user: UserOption = None,
        data_dir: data_dir = None,
    ) -> None:
        """List your collections with their document and passage counts."""
        run(_list(load_settings(data_dir=data_dir), user))

    @collections.command("create")
    def create_command(
        name: str,
        description: Annotated[str, typer.Option(help="What the collection holds.")] = "",
        user: UserOption = None,
        data_dir: data_dir = None,
    ) -> None:
        """Create a collection."""
        run(_create(load_settings(data_dir=data_dir), name, description, user))

    @collections.command("delete")
    def delete_command(
        name: str,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
        user: UserOption = None,
        data_dir: data_dir = None,
    ) -> None:
        """Delete a collection, its documents and their index entries."""
        if not yes:
            typer.confirm(f"Delete collection {name!r} and all its documents?", abort=True)
        run(_delete(load_settings(data_dir=data_dir), name, user))
