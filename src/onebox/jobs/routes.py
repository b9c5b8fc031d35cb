"""HTTP for the caller's background jobs (ingestion progress across collections)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from onebox.core.errors import NotFoundError
from onebox.core.inputs import PageOffset
from onebox.core.pagination import Page
from onebox.deps import CurrentUserId, SessionDep
from onebox.jobs.schemas import JobOut
from onebox.jobs.service import get_job_for_owner, jobs_for_owner

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.get("", response_model=Page[JobOut])
async def list_jobs(
    session: SessionDep,
    user_id: CurrentUserId,
    limit: int = Query(default=50, ge=1, le=200),
    offset: PageOffset = 0,
) -> Page[JobOut]:
    """Newest first."""
    rows = await jobs_for_owner(session, user_id, limit=limit + 1, offset=offset)
    return Page[JobOut].from_rows([JobOut.model_validate(row) for row in rows], limit, offset)


@router.get("/{job_id}", response_model=JobOut)
async def get_job(job_id: str, session: SessionDep, user_id: CurrentUserId) -> JobOut:
    job = await get_job_for_owner(session, job_id, user_id)
    if job is None:
        raise NotFoundError(f"Job {job_id!r} not found")
    return JobOut.model_validate(job)
