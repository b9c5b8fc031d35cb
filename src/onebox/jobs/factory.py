"""Builds the job dispatcher a deployment asks for (``ONEBOX_JOBS_BACKEND``); each backend's
module is imported only when chosen."""

from __future__ import annotations

from onebox.core.settings import Settings
from onebox.jobs.base import JobServices
from onebox.jobs.dispatch import JobDispatcher


def build_dispatcher(settings: Settings, services: JobServices) -> JobDispatcher:
    """The dispatcher ``settings.jobs_backend`` asks for; call ``start()`` once the app is
    ready and ``close()`` before the services are torn down."""
    if settings.jobs_backend == "celery":
        from onebox.jobs.celery_app import CeleryDispatcher

        return CeleryDispatcher(services)
    from onebox.jobs.worker import InProcessWorker

    return InProcessWorker(services)
