"""``onebox ask "question" --collection NAME [--json]``: one turn, printed."""

# No ``from __future__ import annotations``: typer reads the option annotations at run time.

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from onebox.cli_common import console, print_sources, resolve_owner, run
from onebox.core.settings import Settings


async def answer_question(
    settings: Settings,
    question: str,
    collections: list[str],
    *,
    user: str | None,
    model: str | None,
    top_k: int | None,
    on_text: Callable[[str], None] | None,
    on_support: Callable[[list[dict[str, Any]]], None] | None = None,
) -> dict[str, Any]:
    from onebox.app import open_state
    from onebox.chat.turn import TurnRequest, TurnStatus
    from onebox.core.errors import AppError
    from onebox.llm.base import ChatMessage, ProviderError, TextDelta
    from onebox.users.auth import cli_principal

    async with open_state(settings) as state:
        owner = await resolve_owner(state.sessionmaker, user)
        turn = await state.turns.prepare(
            None,
            TurnRequest(
                caller=await cli_principal(state.sessionmaker, owner),
                model=state.models.resolve(model),
                messages=[
                    ChatMessage("system", settings.system_prompt),
                    ChatMessage("user", question),
                ],
                door="cli",
                collections=collections,
                passages=top_k,
                audit_target="onebox ask",
            ),
        )
        support = turn.support_out()
        if on_support is not None:
            on_support(support)  # before the model's first token
        status: TurnStatus = "cancelled"
        error: str | None = None
        try:
            async for chunk in turn.chunks():
                if isinstance(chunk, TextDelta) and on_text is not None:
                    on_text(chunk.text)
            status = "complete"
        except ProviderError as exc:
            status, error = "error", str(exc)
            raise AppError(error) from exc
        finally:
            await turn.finish(status, None if status == "complete" else status, error)
    return {
        "answer": "".join(turn.text),
        "abstained": turn.abstained,
        "support": [
            {"number": s["number"], "quote": s["quote"], "document": s["document"]} for s in support
        ],
        "sources": [
            {
                "number": s["number"],
                "document": s["document"],
                "page": s["page"],
                "heading": s["heading"],
                "snippet": s["snippet"],
                "score": s["score"],
                "cited": s["used"],
                "sentences": s.get("sentences", []),
            }
            for s in turn.sources_out(answered=True)
        ],
    }


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

        def quote(support: list[dict[str, Any]]) -> None:
            for item in support:
                console.print(
                    f"> \u201c{item['quote']}\u201d [{item['number']}] {item['document']}",
                    highlight=False, markup=False, style="italic",
                )  # fmt: skip
            if support:
                console.print()

        result = run(
            answer_question(
                settings,
                question,
                collection,
                user=user,
                model=model,
                top_k=top_k,
                on_text=None if as_json else stream,
                on_support=None if as_json else quote,
            )
        )
        if as_json:
            print(json.dumps(result, ensure_ascii=False))
            return
        console.print()
        print_sources([{**s, "used": s["cited"]} for s in result["sources"]])

    return ask
