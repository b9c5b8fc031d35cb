from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from onebox import __version__
from onebox.core.db import ping
from onebox.deps import StateDep
from onebox.ratelimit.storage_health import StorageState

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
    """Readiness: the database and the vector index answer and the model is loaded. The
    rate-limit storage is reported too, but does not decide readiness (see below)."""
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
    # Reported beside the checks, never failing readiness: the storage is shared by every
    # replica, so taking replicas out of rotation cannot route around its outage -- it would
    # only turn a degraded service into none. While it is down, paths under fail_open still
    # serve (unthrottled) and those under fail_closed answer their own 503 with Retry-After.
    # The ping also notices a recovery when no request has touched the storage since.
    limiter = state.limits.limiter
    await limiter.check_storage()
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "checks": checks,
            "rate_limit_storage": _storage_detail(limiter.storage_state()),
        },
        status_code=200 if ready else 503,
    )


def _storage_detail(storage: StorageState) -> dict[str, Any]:
    # No error text: it names internal addresses, and this endpoint is unauthenticated.
    since = storage.down_since
    return {
        "status": "ok" if storage.healthy else "degraded",
        "down_since": datetime.fromtimestamp(since, UTC).isoformat() if since else None,
        "outages": storage.outages,
        "failed_operations": storage.failures,
    }
