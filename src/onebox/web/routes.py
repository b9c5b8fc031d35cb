"""Serves the single-page web UI. Plain files, no build step."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from onebox.chat.highlighting import code_stylesheet

STATIC_DIR = Path(str(files("onebox.web") / "static"))

# The page runs no inline script, so the policy can forbid it outright.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
HTML_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=HTML_HEADERS)


@router.get("/c/{conversation_id}")
async def conversation_page(conversation_id: str) -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=HTML_HEADERS)


@router.get("/styles/code-light.css")
async def code_light() -> Response:
    """Colours for highlighted code (Pygments classes) in light mode."""
    return _stylesheet(code_stylesheet("light"))


@router.get("/styles/code-dark.css")
async def code_dark() -> Response:
    """Colours for highlighted code in dark mode."""
    return _stylesheet(code_stylesheet("dark"))


def _stylesheet(css: str) -> Response:
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    return Response(css, media_type="text/css", headers=headers)


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC_DIR)
