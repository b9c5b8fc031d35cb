"""``onebox chat``: a terminal conversation stored like any other, one turn per line through
the same turn pipeline as the web UI."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from rich.console import Console

from onebox.app import open_state
from onebox.chat.models import Conversation
from onebox.chat.service import ChatService
from onebox.chat.turn import TurnRequest
from onebox.cli_common import CliError, print_sources, resolve_owner
from onebox.core.errors import AppError
from onebox.core.settings import Settings
from onebox.documents.service import DocumentService
from onebox.llm.base import ChatMessage
from onebox.state import AppState
from onebox.users.auth import Principal, cli_principal


async def _reply(
    state: AppState, caller: Principal, conversation_id: str, content: str, console: Console
) -> None:
    async with state.sessionmaker() as session:
        conversation = await ChatService(session).get_conversation(caller.user_id, conversation_id)
        turn = await state.turns.prepare(
            session,
            TurnRequest(
                caller=caller,
                model=state.models.resolve(conversation.model),
                messages=[ChatMessage("user", content)],
                door="cli",
                conversation=conversation,
                audit_target=conversation.id,
            ),
        )
        await session.commit()
    run = await state.generations.start(turn)
    try:
        async for event in run.stream():
            if event.name == "delta":
                console.print(event.data["text"], end="", markup=False, highlight=False)
            elif event.name == "done" and turn.retrieval_used:
                console.print()
                print_sources(event.data["message"]["sources"] or [])
            elif event.name == "error":
                console.print(f"\n[red]{event.data['error']['message']}[/red]", end="")
    except asyncio.CancelledError:
        run.stop()
        raise
    finally:
        if run.task is not None:
            await asyncio.shield(run.task)
        console.print()


async def _open_conversation(
    state: AppState,
    owner_id: str,
    conversation_id: str | None,
    collections: Sequence[str],
) -> Conversation:
    async with state.sessionmaker() as session:
        chat = ChatService(session)
        ids = (
            await DocumentService(session, state.settings).resolve_collections(
                owner_id, collections
            )
            if collections
            else None
        )
        if conversation_id is None:
            conversation = await chat.create_conversation(owner_id, collection_ids=ids)
        else:
            conversation = await chat.get_conversation(owner_id, conversation_id)
            if ids is not None:
                conversation.collection_ids = ids
        await session.commit()
        return conversation


async def run_terminal_chat(
    settings: Settings,
    conversation_id: str | None,
    console: Console,
    collections: Sequence[str] = (),
    user: str | None = None,
) -> None:
    async with open_state(settings) as state:
        try:
            owner_id = await resolve_owner(state.sessionmaker, user)
            caller = await cli_principal(state.sessionmaker, owner_id)
            conversation = await _open_conversation(state, owner_id, conversation_id, collections)
        except (AppError, CliError) as exc:
            console.print(f"[red]{getattr(exc, 'message', str(exc))}[/red]")
            return
        reading = f" · reading {', '.join(collections)}" if collections else ""
        console.print(
            f"[dim]Conversation {conversation.id} · {state.models.default}{reading} · "
            "Ctrl-D or Ctrl-C to quit; a reply cut short is kept[/dim]"
        )
        while True:
            try:
                content = await asyncio.to_thread(console.input, "[bold cyan]you>[/bold cyan] ")
            except EOFError:
                console.print()
                return
            if not content.strip():
                continue
            console.print("[bold green]onebox>[/bold green] ", end="")
            try:
                await _reply(state, caller, conversation.id, content, console)
            except AppError as exc:
                console.print(f"[red]{exc.message}[/red]")
