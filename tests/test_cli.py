"""The ``onebox`` command, run as a real process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from onebox import __version__


def onebox(
    *args: str, data_dir: Path, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "ONEBOX_LLM_PROVIDER": "fake", **env}
    return subprocess.run(
        [sys.executable, "-m", "onebox", *args, "--data-dir", str(data_dir)]
        if args[0] != "version"
        else [sys.executable, "-m", "onebox", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )


def test_version(tmp_path: Path) -> None:
    result = onebox("version", data_dir=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == __version__


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    result = onebox("db", "upgrade", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "onebox.db") as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"users", "conversations", "messages"} <= tables


def test_terminal_chat_streams_and_stores(tmp_path: Path) -> None:
    result = onebox("chat", data_dir=tmp_path, stdin="hello from the terminal\n")
    assert result.returncode == 0, result.stderr
    assert "Echo: hello from the terminal" in result.stdout
    with sqlite3.connect(tmp_path / "onebox.db") as connection:
        rows = connection.execute(
            "SELECT role, content, status FROM messages ORDER BY created_at"
        ).fetchall()
    assert rows == [
        ("user", "hello from the terminal", "complete"),
        ("assistant", "Echo: hello from the terminal", "complete"),
    ]


def test_two_instances_live_side_by_side(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert onebox("chat", data_dir=tmp_path / name, stdin=f"I am {name}\n").returncode == 0
    for name in ("a", "b"):
        with sqlite3.connect(tmp_path / name / "onebox.db") as connection:
            contents = [row[0] for row in connection.execute("SELECT content FROM messages")]
        assert f"I am {name}" in contents
        assert len(contents) == 2


def test_unsafe_production_config_is_refused(tmp_path: Path) -> None:
    result = onebox(
        "db", "upgrade", data_dir=tmp_path, ONEBOX_ENV="production", ONEBOX_SECRET_KEY="weak"
    )
    assert result.returncode == 2
    assert "ONEBOX_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
