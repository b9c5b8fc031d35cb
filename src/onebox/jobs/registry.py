"""Which function runs each job kind. Targets are ``module:function`` strings imported on
first use, so a process only loads the code (and heavy libraries) of kinds it runs."""

from __future__ import annotations

import importlib
from typing import cast

from onebox.jobs.base import JobHandler, PermanentJobError

HANDLERS: dict[str, str] = {
    "ingest_document": "onebox.documents.ingestion.tasks:ingest_document",
    "embed_sentences": "onebox.documents.ingestion.sentences:embed_sentences",
    # Deterministic kinds for tests and for checking a deployment's workers end to end.
    "testing.sleep": "onebox.testing.job_handlers:sleep",
    "testing.fail": "onebox.testing.job_handlers:fail",
    "testing.poison": "onebox.testing.job_handlers:poison",
    "testing.flaky": "onebox.testing.job_handlers:flaky",
    "testing.record": "onebox.testing.job_handlers:record",
    "testing.group_record": "onebox.testing.job_handlers:group_record",
    "testing.background_record": "onebox.testing.job_handlers:record",
}

# Kinds a worker may claim several of at once and run side by side (see JobGroup).
GROUPABLE: set[str] = {"ingest_document", "testing.group_record"}
# Kinds a polling worker claims only when no other job is due: work that makes something
# faster later must not hold up work a user is waiting for.
BACKGROUND: set[str] = {"embed_sentences", "testing.background_record"}

_resolved: dict[str, JobHandler] = {}


class UnknownJobKind(PermanentJobError):
    """No handler is registered for the kind: retrying cannot help."""


def register(kind: str, target: str) -> None:
    """Add or replace a kind (``module:function``)."""
    HANDLERS[kind] = target
    _resolved.pop(kind, None)


def resolve(kind: str) -> JobHandler:
    handler = _resolved.get(kind)
    if handler is not None:
        return handler
    target = HANDLERS.get(kind)
    if target is None:
        raise UnknownJobKind(f"unknown job kind {kind!r}: this worker has no handler for it")
    module_name, _, attribute = target.partition(":")
    try:
        handler = cast(JobHandler, getattr(importlib.import_module(module_name), attribute))
    except (ImportError, AttributeError) as exc:
        raise UnknownJobKind(
            f"the handler for job kind {kind!r} ({target}) cannot be loaded: {exc}"
        ) from exc
    _resolved[kind] = handler
    return handler
