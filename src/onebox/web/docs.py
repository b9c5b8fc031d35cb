"""The API reference at ``/docs``: Swagger UI served from Onebox itself.

FastAPI's own page loads Swagger UI from a public CDN and starts it with an inline script:
offline it is a blank page, online it tells a third party who reads the docs, and the
deny-all policy every non-page response gets would block it anyway. Here the assets come
from the ``fastapi-offline`` package, the page runs no inline script (``static/docs.js``
starts Swagger UI) under the web UI's own Content-Security-Policy, and no request leaves
the box (the spec validator badge is off).
ReDoc is not served.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from onebox.core.errors import NotFoundError
from onebox.web.routes import HTML_HEADERS

SWAGGER_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")
ASSETS_CACHE = "public, max-age=86400"

router = APIRouter(include_in_schema=False)


def swagger_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def docs_page(root: str, openapi_url: str) -> str:
    assets = escape(f"{root}/docs/assets")
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <title>Onebox API</title>
  <link rel="icon" href="{assets}/favicon.png">
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script type="module" src="{escape(root)}/static/docs.js"></script>
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{escape(root + openapi_url)}"></div>
</body>
</html>
"""


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = str(request.scope.get("root_path", ""))
    openapi_url = request.app.openapi_url or "/openapi.json"
    # The web UI's policy (scripts from Onebox only) fits Swagger UI as it is.
    return HTMLResponse(docs_page(root, openapi_url), headers=HTML_HEADERS)


@router.get("/docs/assets/{name}")
async def swagger_asset(name: str) -> FileResponse:
    if name not in SWAGGER_ASSETS:
        raise NotFoundError(f"No such asset: {name!r}")
    return FileResponse(swagger_dir() / name, headers={"Cache-Control": ASSETS_CACHE})
