"""``onebox users …`` and ``onebox keys …``: the same services as the HTTP API."""

import asyncio
import sys
from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console

from onebox.core.db import create_engine, create_sessionmaker, utcnow
from onebox.core.errors import AppError
from onebox.core.migrate import upgrade
from onebox.core.settings import Settings
from onebox.users.keys import KeyLimits, KeyService
from onebox.users.repository import UserRepository
from onebox.users.service import AccountService, normalize_email

console = Console()
errors = Console(stderr=True)


def _read_password(confirm: bool) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = typer.prompt("Password", hide_input=True)
    if confirm and typer.prompt("Repeat password", hide_input=True) != password:
        errors.print("[red]The passwords do not match[/red]")
        raise typer.Exit(2)
    return str(password)


def _run(coroutine_factory: object) -> None:
    try:
        asyncio.run(coroutine_factory)  # type: ignore[arg-type]
    except AppError as exc:
        errors.print(f"[red]{exc.message}[/red]", highlight=False)
        raise typer.Exit(2) from exc


async def _create_user(settings: Settings, email: str, password: str, admin: bool) -> None:
    settings.prepare_data_dir()
    engine = create_engine(settings.resolved_database_url)
    try:
        await upgrade(engine)
        async with create_sessionmaker(engine)() as session:
            service = AccountService(session)
            user = await service.create_account(email, password, is_admin=admin)
            await service.audit(
                "cli_user_create", actor_email="cli", target=user.email,
                details=f"role={user.role}",
            )  # fmt: skip
            await session.commit()
            console.print(f"Created {user.role} {user.email} ({user.id})", highlight=False)
    finally:
        await engine.dispose()


def parse_expiry(value: str | None) -> datetime | None:
    """``30d``, ``12h`` or an ISO date/time."""
    if value is None:
        return None
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if value[:-1].isdigit() and value[-1] in units:
        return utcnow() + timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise AppError(f"--expires takes 30d, 12h or an ISO date, not {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=utcnow().tzinfo)


async def _create_key(settings: Settings, email: str, name: str, expires: datetime | None,
                      limits: KeyLimits, models: list[str], collections: list[str]) -> None:  # fmt: skip
    settings.prepare_data_dir()
    engine = create_engine(settings.resolved_database_url)
    try:
        await upgrade(engine)
        async with create_sessionmaker(engine)() as session:
            user = await UserRepository(session).get_by_email(normalize_email(email))
            if user is None or not user.is_account:
                raise AppError(f"No account with the email {email!r}")
            key, secret = await KeyService(session).create(
                user, name=name, expires_at=expires, limits=limits,
                models=models or None, collections=collections or None,
            )  # fmt: skip
            await AccountService(session).audit(
                "key_create", actor_email="cli", target=key.prefix, details=f"user={user.email}"
            )
            await session.commit()
    finally:
        await engine.dispose()
    errors.print("Store this key now; it is not shown again.")
    print(secret)


def register(app: typer.Typer, load_settings: object, data_dir_option: object) -> None:
    users = typer.Typer(help="Accounts.", no_args_is_help=True)
    keys = typer.Typer(help="API keys.", no_args_is_help=True)
    app.add_typer(users, name="users")
    app.add_typer(keys, name="keys")
    loader = load_settings

    @users.command("create")
    def users_create(
        email: str,
        admin: Annotated[bool, typer.Option("--admin", help="Make an administrator.")] = False,
        data_dir: data_dir_option = None,  # type: ignore[valid-type]
    ) -> None:
        """Create an account; the password is read from stdin or prompted for."""
        settings = loader(data_dir=data_dir)  # type: ignore[operator]
        _run(_create_user(settings, email, _read_password(confirm=True), admin))

    @keys.command("create")
    def keys_create(
        user: Annotated[str, typer.Option("--user", help="Owner's email.")],
        name: Annotated[str, typer.Option(help="A label for the key.")] = "",
        expires: Annotated[str | None, typer.Option(help="30d, 12h or an ISO date.")] = None,
        rpm: Annotated[int | None, typer.Option(help="Requests per minute.", min=1)] = None,
        tpm: Annotated[int | None, typer.Option(help="Tokens per minute.", min=1)] = None,
        models: Annotated[list[str] | None, typer.Option(help="Allowed model (repeat).")] = None,
        collections: Annotated[
            list[str] | None, typer.Option(help="Readable collection (repeat).")
        ] = None,
        data_dir: data_dir_option = None,  # type: ignore[valid-type]
    ) -> None:
        """Create an API key and print it once."""
        settings = loader(data_dir=data_dir)  # type: ignore[operator]
        try:
            expiry = parse_expiry(expires)
        except AppError as exc:
            errors.print(f"[red]{exc.message}[/red]", highlight=False)
            raise typer.Exit(2) from exc
        limits = KeyLimits(requests_per_minute=rpm, tokens_per_minute=tpm)
        _run(_create_key(settings, user, name, expiry, limits, models or [], collections or []))
