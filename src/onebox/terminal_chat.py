"""``onebox chat``: a terminal conversation stored like any other."""

from __future__ import annotations

import asyncio

from rich.console import Console

from onebox.app import open_state
from onebox.chat.generation import default_params
from onebox.chat.service import ChatService
from onebox.core.errors import AppError
from onebox.core.settings import Settings
from onebox.core.state import AppState
from onebox.llm.base import ContextWindowExceededError


async def _reply(state: AppState, conversation_id: str, content: str, console: Console) -> None:
    settings = state.settings
    async with state.sessionmaker() as session:
        service = ChatService(session)
        conversation = await service.get_conversation(state.local_user_id, conversation_id)
        entry = state.models.resolve(conversation.model)
        params = default_params(entry, settings)
        message = await service.add_user_message(
            conversation, content, parent_id=None, max_chars=settings.max_message_chars
        )
        history = await service.history_for(conversation, message, settings.system_prompt)
        try:
            prompt = state.generations.prepare(entry, history, params)
        except ContextWindowExceededError as exc:
            raise AppError(str(exc)) from exc
        await session.commit()
    run = state.generations.start(
        model=entry,
        conversation_id=conversation_id,
        parent_id=message.id,
        messages=prompt,
        params=params,
        user_id=state.local_user_id,
        source="cli",
    )
    try:
        async for event in run.stream():
            if event.name == "delta":
                console.print(event.data["text"], end="", markup=False, highlight=False)
            elif event.name == "error":
                console.print(f"\n[red]{event.data['error']['message']}[/red]", end="")
    except asyncio.CancelledError:
        run.stop()
        raise
    finally:
        if run.task is not None:
            await asyncio.shield(run.task)
        console.print()


async def run_terminal_chat(
    settings: Settings, conversation_id: str | None, console: Console
) -> None:
    async with open_state(settings) as state:
        async with state.sessionmaker() as session:
            service = ChatService(session)
            if conversation_id is None:
                conversation = await service.create_conversation(state.local_user_id)
                await session.commit()
            else:
                try:
                    conversation = await service.get_conversation(
                        state.local_user_id, conversation_id
                    )
                except AppError as exc:
                    console.print(f"[red]{exc.message}[/red]")
                    return
        console.print(
            f"[dim]Conversation {conversation.id} · {state.models.default} · "
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
                await _reply(state, conversation.id, content, console)
            except AppError as exc:
                console.print(f"[red]{exc.message}[/red]")
