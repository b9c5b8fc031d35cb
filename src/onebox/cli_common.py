"""What every CLI command shares: the consoles, the error that ends a command with a
message, the owner a command acts for, and running a coroutine with clean error output."""

# No ``from __future__ import annotations``: typer reads annotations at run time.

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import typer
from rich.console import Console
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onebox.core.errors import AppError
from onebox.core.settings import Settings

console = Console()
errors = Console(stderr=True)


class CliError(Exception):
    pass


async def resolve_owner(sessionmaker: async_sessionmaker[AsyncSession], email: str | None) -> str:
    """``--user``, else the first administrator, else the single-user-mode local user."""
    from onebox.users.repository import UserRepository
    from onebox.users.service import ensure_local_user, normalize_email

    async with sessionmaker() as session:
        repository = UserRepository(session)
        if email:
            user = await repository.get_by_email(normalize_email(email))
            if user is None:
                raise CliError(f"No user {email!r}")
            return user.id
        admin = await repository.first_admin()
        if admin is not None and admin.is_account:
            return admin.id
    return (await ensure_local_user(sessionmaker)).id


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    from onebox.core.db import create_engine, create_sessionmaker
    from onebox.core.migrate import upgrade

    settings.prepare_data_dir()
    engine = create_engine(settings.resolved_database_url)
    try:
        await upgrade(engine)
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


def run(coroutine: Any) -> Any:
    try:
        return asyncio.run(coroutine)
    except (AppError, CliError) as exc:
        errors.print(f"[red]{getattr(exc, 'message', str(exc))}[/red]", highlight=False)
        raise typer.Exit(2) from exc


def print_sources(sources: list[dict[str, Any]]) -> None:
    """Numbered sources after an answer: cited ones first, the rest marked."""
    if not sources:
        console.print("[dim]No passage in these collections matched.[/dim]")
        return
    console.print("\n[bold]Sources[/bold]")
    for source in sorted(sources, key=lambda s: (not s.get("used"), s["number"])):
        where = source["document"]
        if source["page"] is not None:
            where += f", page {source['page']}"
        if source["heading"]:
            where += f" — {source['heading']}"
        mark = "" if source.get("used") else " [dim](retrieved, not cited)[/dim]"
        console.print(f"[{source['number']}] {where}{mark}", highlight=False)
        console.print(Text("    " + source["snippet"], style="dim"), highlight=False)
