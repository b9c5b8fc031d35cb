"""``onebox ask "question" --collection NAME [--json]``."""

# No ``from __future__ import annotations``: typer reads the option annotations at run time.

import contextlib
import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.text import Text

from onebox.core.settings import Settings
from onebox.documents.answering import stored_sources, with_sources
from onebox.documents.cli import console, resolve_owner, run
from onebox.documents.retrieval import Source
from onebox.documents.service import DocumentService


async def answer_question(
    settings: Settings,
    question: str,
    collections: list[str],
    *,
    user: str | None,
    model: str | None,
    top_k: int | None,
    on_text: Callable[[str], None] | None,
) -> dict[str, Any]:
    from onebox.app import open_state
    from onebox.chat.generation import default_params
    from onebox.llm.base import ChatMessage, ChatRequest, TextDelta
    from onebox.llm.context import fit_to_context
    from onebox.llm.router import Route, stream_with_fallbacks

    async with open_state(settings) as state:
        owner = await resolve_owner(state.sessionmaker, user)
        async with state.sessionmaker() as session:
            ids = await DocumentService(session, settings).resolve_collections(owner, collections)
            sources: list[Source] = await state.retriever().retrieve(
                session, question, ids, limit=top_k
            )
        entry = state.models.resolve(model)
        params = default_params(entry, settings)
        history = [ChatMessage("system", settings.system_prompt), ChatMessage("user", question)]
        messages, prompt_secret = state.guard.protect_system_prompt(with_sources(history, sources))
        provider = entry.provider
        messages = fit_to_context(
            messages, provider.count_tokens, provider.context_size, params.max_tokens
        )
        parts: list[str] = []
        stream = state.guard.filter_output(
            stream_with_fallbacks(
                state.models, Route(requested=entry), ChatRequest(messages=messages, params=params)
            ),
            prompt_secret,
        )
        async with contextlib.aclosing(stream) as chunks:
            async for chunk in chunks:
                if isinstance(chunk, TextDelta):
                    parts.append(chunk.text)
                    if on_text is not None:
                        on_text(chunk.text)
    answer = "".join(parts)
    listed = stored_sources(sources, answer)
    return {
        "answer": answer,
        "sources": [
            {
                "number": s["number"],
                "document": s["document"],
                "page": s["page"],
                "heading": s["heading"],
                "snippet": s["snippet"],
                "score": s["score"],
                "cited": s["used"],
            }
            for s in listed
        ],
    }


def _print_sources(sources: list[dict[str, Any]]) -> None:
    if not sources:
        console.print("[dim]No passage in these collections matched.[/dim]")
        return
    console.print("\n[bold]Sources[/bold]")
    for source in sorted(sources, key=lambda s: (not s["cited"], s["number"])):
        where = source["document"]
        if source["page"] is not None:
            where += f", page {source['page']}"
        if source["heading"]:
            where += f" — {source['heading']}"
        mark = "" if source["cited"] else " [dim](retrieved, not cited)[/dim]"
        console.print(f"[{source['number']}] {where}{mark}", highlight=False)
        console.print(Text("    " + source["snippet"], style="dim"), highlight=False)


def ask_command(load_settings: Callable[..., Settings], data_dir: Any) -> Callable[..., None]:
    def ask(
        question: str,
        collection: Annotated[
            list[str], typer.Option("--collection", "-c", help="Collection (repeat for more).")
        ],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
        user: Annotated[str | None, typer.Option(help="Owner's email (default: admin).")] = None,
        model: Annotated[str | None, typer.Option(help="Model name or alias.")] = None,
        top_k: Annotated[int | None, typer.Option(help="Passages to retrieve.", min=1)] = None,
        data_dir: data_dir = None,
    ) -> None:
        """Answer a question from your documents, citing its sources."""
        settings = load_settings(data_dir=data_dir)

        def stream(text: str) -> None:
            console.print(text, end="", highlight=False, markup=False)

        result = run(
            answer_question(
                settings,
                question,
                collection,
                user=user,
                model=model,
                top_k=top_k,
                on_text=None if as_json else stream,
            )
        )
        if as_json:
            print(json.dumps(result, ensure_ascii=False))
            return
        console.print()
        _print_sources(result["sources"])

    return ask
