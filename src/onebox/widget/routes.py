"""HTTP for the widget's visitors: the script, the demo page, and the widget API
(``/widget/config``, ``/widget/messages``, ``/widget/conversation``).

Every API call carries the widget key (``Authorization: Bearer obw_…``) and, except the
config, the browser's anonymous visitor id (``X-Onebox-Visitor``); the key's origin
allow-list is checked on every one. CORS for these paths is set by ``WidgetCors``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, StreamingResponse

from onebox.chat.turn import TurnStatus
from onebox.core.errors import APIError, NotFoundError
from onebox.core.sse import SSE_HEADERS, format_event
from onebox.deps import SessionDep, StateDep
from onebox.guard.service import OutputBlockedError
from onebox.llm.base import ProviderError, ProviderOverloadedError, StreamChunk, TextDelta
from onebox.state import AppState
from onebox.web.routes import STATIC_DIR
from onebox.widget.access import VISITOR_HEADER, RequestOrigin, visitor_id, widget_principal
from onebox.widget.pages import DEMO_CSP, demo_page
from onebox.widget.schemas import VisitorConversation, WidgetConfigOut, WidgetMessageIn
from onebox.widget.service import Visitor, VisitorTurn, WidgetService, visitor_sources

logger = logging.getLogger(__name__)

router = APIRouter(tags=["widget"])

SCRIPT_HEADERS = {
    "Cache-Control": "public, max-age=300",
    # Loaded by other sites' pages, including ones that require CORP on subresources.
    "Cross-Origin-Resource-Policy": "cross-origin",
    "X-Content-Type-Options": "nosniff",
}
# The loader's modules: revalidated on every load, so an upgrade never mixes versions.
MODULE_HEADERS = {**SCRIPT_HEADERS, "Cache-Control": "no-cache"}
MODULES_DIR = STATIC_DIR / "widget"
MODULE_NAME = re.compile(r"^[a-z]+\.js$")


def request_origin(request: Request) -> RequestOrigin:
    headers = request.headers
    return RequestOrigin(
        origin=headers.get("origin", ""),
        host=headers.get("host", ""),
        fetch_site=headers.get("sec-fetch-site", ""),
    )


async def current_visitor(request: Request, state: AppState, *, needs_id: bool = True) -> Visitor:
    principal, key = await widget_principal(
        state.auth, request.headers.get("authorization", ""), request_origin(request)
    )
    return Visitor(
        principal=principal,
        key=key,
        visitor_id=visitor_id(request.headers.get(VISITOR_HEADER)) if needs_id else "",
        ip=state.limits.client_ip(request.client.host if request.client else None, request.headers),
    )


# --- the script and the pages ---------------------------------------------------------


@router.get("/widget.js", include_in_schema=False)
@router.get("/embed.js", include_in_schema=False)
async def widget_script() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "widget.js", media_type="text/javascript; charset=utf-8",
        headers=SCRIPT_HEADERS,
    )  # fmt: skip


@router.get("/widget/modules/{name}", include_in_schema=False)
async def widget_module(name: str) -> FileResponse:
    """The widget's ES modules for other sites' pages (CORS: ``WidgetCors``)."""
    if not MODULE_NAME.fullmatch(name) or not (MODULES_DIR / name).is_file():
        raise NotFoundError(f"No widget module {name!r}")
    return FileResponse(
        MODULES_DIR / name, media_type="text/javascript; charset=utf-8", headers=MODULE_HEADERS
    )


@router.get("/widget", include_in_schema=False)
async def widget_page(request: Request) -> RedirectResponse:
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"/widget/demo{query}", status_code=307)


@router.get("/widget/demo", include_in_schema=False)
async def widget_demo(key: str | None = Query(default=None, max_length=200)) -> HTMLResponse:
    status, page = demo_page(key)
    return HTMLResponse(
        page, status_code=status,
        headers={"Content-Security-Policy": DEMO_CSP, "Cache-Control": "no-cache"},
    )  # fmt: skip


# --- the widget API -------------------------------------------------------------------


@router.get("/widget/config", response_model=WidgetConfigOut)
async def widget_config(request: Request, state: StateDep, session: SessionDep) -> WidgetConfigOut:
    visitor = await current_visitor(request, state, needs_id=False)
    return await WidgetService(session, state.settings).config(visitor.key.id)


@router.get("/widget/conversation", response_model=VisitorConversation)
async def visitor_conversation(
    request: Request,
    state: StateDep,
    session: SessionDep,
    conversation_id: str = Query(alias="id", min_length=1, max_length=36),
) -> VisitorConversation:
    """The visitor's own conversation with this key, as they left it."""
    visitor = await current_visitor(request, state)
    return await WidgetService(session, state.settings).visitor_conversation(
        visitor, conversation_id
    )


@router.post(
    "/widget/messages",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def post_message(
    body: WidgetMessageIn, request: Request, state: StateDep, session: SessionDep
) -> StreamingResponse:
    """A visitor's question, answered as Server-Sent Events: ``conversation``, ``sources``,
    ``delta``…, then ``done`` or ``error``. Refusals before the answer are plain HTTP
    errors (403 origin, 409 conversation limit, 429 limits, 503 assistant offline)."""
    visitor = await current_visitor(request, state)
    prepared = await WidgetService(session, state.settings).prepare_turn(
        state.turns, state.models, visitor, body
    )
    await session.commit()
    try:
        first = await prepared.turn.first_chunk()
    except ProviderError as exc:
        raise _before_answer(exc) from exc
    return StreamingResponse(
        _reply_events(prepared, first), media_type="text/event-stream", headers=SSE_HEADERS
    )


def _before_answer(exc: ProviderError) -> APIError:
    if isinstance(exc, ProviderOverloadedError):
        return APIError(
            429, "The assistant is busy; try again in a moment", "rate_limit_error",
            code="assistant_busy", headers={"Retry-After": str(max(1, round(exc.retry_after)))},
        )  # fmt: skip
    if isinstance(exc, OutputBlockedError):
        return APIError(400, str(exc), "invalid_request_error", code="output_blocked")
    logger.warning("Widget answer failed before it started: %s", exc)
    return APIError(
        503, "The assistant is offline; try again later", "service_unavailable",
        code="assistant_offline",
    )  # fmt: skip


async def _reply_events(prepared: VisitorTurn, first: StreamChunk) -> AsyncIterator[bytes]:
    turn, conversation, links = prepared.turn, prepared.conversation, prepared.links
    yield format_event(
        "conversation",
        {"id": conversation.id if conversation else None, "retained": conversation is not None},
    )
    if turn.retrieval_used:
        sources = visitor_sources(turn.sources_out(answered=False), links)
        yield format_event("sources", {"sources": _dump(sources)})
        support = turn.support_event()
        quotes = [
            {"number": s["number"], "quote": s["quote"], "title": s["document"]}
            for s in support["support"]
        ]  # what a visitor may see: no ids, no scores
        yield format_event("support", {"support": quotes, "abstained": support["abstained"]})
    status: TurnStatus = "cancelled"
    error_type: str | None = "cancelled"
    error: str | None = "Stopped before the answer was complete"
    try:
        async for chunk in turn.chunks(first):
            if isinstance(chunk, TextDelta):
                yield format_event("delta", {"text": chunk.text})
        status, error_type, error = "complete", None, None
    except ProviderError as exc:
        status, error_type, error = "error", type(exc).__name__, str(exc)
    except Exception:
        logger.exception("Widget answer %s failed", turn.message_id)
        status, error_type, error = "error", "internal", "The assistant failed while answering"
    finally:
        # Also on cancellation (the visitor pressed Stop or left): the turn records usage,
        # releases its admission and keeps the partial answer.
        await turn.finish(status, error_type, error)
    final = _dump(visitor_sources(turn.sources_out(answered=True), links))
    if status == "complete":
        yield format_event("done", {"message_id": turn.message_id, "sources": final})
    else:
        yield format_event(
            "error",
            {
                "error": {"message": error, "type": "generation_error", "code": "answer_failed"},
                "sources": final,
            },
        )


def _dump(sources: list[Any]) -> list[dict[str, Any]]:
    return [source.model_dump(mode="json") for source in sources]
