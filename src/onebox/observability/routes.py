"""``GET /metrics`` for Prometheus (behind ``ONEBOX_METRICS_TOKEN`` when set) and the admin
System page's JSON, both read from the same merged metrics."""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily

from onebox.core.metrics import metrics, render, sweep_dead_processes
from onebox.deps import AdminPrincipal, StateDep, unauthenticated
from onebox.jobs.registry import HANDLERS
from onebox.jobs.repository import JobRepository
from onebox.llm.upstream_health import UpstreamHealth
from onebox.observability.sampler import Sampler
from onebox.state import AppState

logger = logging.getLogger(__name__)
router = APIRouter(tags=["observability"])

JOB_STATES = ("queued", "running")


def _check_token(expected: str, authorization: str | None) -> None:
    scheme, _, credential = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        credential.strip().encode(), expected.encode()
    ):
        raise unauthenticated("GET /metrics needs 'Authorization: Bearer <metrics token>'")


async def _job_backlog(state: AppState) -> list[GaugeMetricFamily]:
    """Jobs queued and running, from the database: the truth whichever process runs them."""
    try:
        async with state.sessionmaker() as session:
            counts = await JobRepository(session).unfinished_counts()
    except Exception as exc:
        logger.warning("Metrics: could not count jobs: %s", exc)
        return []
    found = {(kind, status): count for kind, status, count in counts}
    kinds = {kind for kind in HANDLERS if not kind.startswith("testing.")}
    family = GaugeMetricFamily(
        "onebox_jobs",
        "Jobs queued or running, by kind (from the database)",
        labels=["kind", "state"],
    )
    for kind in sorted(kinds | {kind for kind, _ in found}):
        for status in JOB_STATES:
            family.add_metric([kind, status], found.get((kind, status), 0))
    return [family]


def _refresh(sampler: Sampler | None) -> None:
    if sampler is not None:
        sampler.refresh()
    else:
        metrics().flush()


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request, state: StateDep) -> Response:
    token = state.settings.metrics_token
    if token is not None:
        _check_token(token.get_secret_value(), request.headers.get("authorization"))
    _refresh(state.sampler)
    sweep_dead_processes()
    extra = await _job_backlog(state)
    body = await asyncio.to_thread(render, extra)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _model_view(state: AppState) -> list[dict[str, Any]]:
    views = []
    for entry in state.models.entries():
        view: dict[str, Any] = {"name": entry.name, "provider": entry.spec.provider}
        load = entry.provider.engine_load()
        if load is not None:
            view["engine"] = {
                "running": load.running,
                "waiting": load.waiting,
                "batch_size": load.batch_size,
                "kv_cache_usage": load.kv_cache_usage,
            }
        health = getattr(entry.provider, "health", None)
        if isinstance(health, UpstreamHealth):
            view["upstream"] = {
                "state": health.state,
                "consecutive_failures": health.consecutive_failures,
                "cooldown_remaining_seconds": health.cooldown_remaining,
            }
        views.append(view)
    return views


@router.get("/api/admin/system")
async def system_report(admin: AdminPrincipal, state: StateDep) -> dict[str, Any]:
    """The last minutes: tokens/s, p95 latency, queue depth, error rate (every process)."""
    sampler = state.sampler
    if sampler is None:
        raise RuntimeError("the metrics sampler is not running")
    sampler.refresh()
    report = sampler.recent.report(await sampler.totals())
    report["models"] = _model_view(state)
    return report
