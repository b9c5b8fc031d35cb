from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from onebox import __version__
from onebox.core.db import ping
from onebox.deps import StateDep

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok", "version": __version__}


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, Literal["ok", "loading", "unreachable"]]


@router.get(
    "/readyz",
    response_model=None,
    responses={
        200: {"model": Readiness, "description": "Ready"},
        503: {"model": Readiness, "description": "Not ready: see which check failed"},
    },
)
async def readyz(state: StateDep) -> JSONResponse:
    """Readiness: the database and the vector index answer and the model is loaded."""
    checks: dict[str, str] = {}
    try:
        await ping(state.engine)
        checks["database"] = "ok"
    except Exception as exc:
        logger.warning("Readiness: database unreachable: %s", exc)
        checks["database"] = "unreachable"
    checks["model"] = "ok" if state.models.is_ready() else "loading"
    try:
        # Answers only if the vector index (in-process, a server, or PostgreSQL) does.
        await state.index.count()
        checks["index"] = "ok"
    except Exception as exc:
        logger.warning("Readiness: vector index unreachable: %s", exc)
        checks["index"] = "unreachable"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
