"""``onebox ingest``, ``onebox ask`` and ``onebox collections`` as real processes."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from tests.test_cli import onebox

GUIDE = """# Greenhouse guide

## Watering

Water the Kalanchoe succulents once every twelve days; never let the pots stand in water.

## Pests

Whiteflies are controlled with yellow sticky traps hung above the benches.
"""


def _corpus(root: Path) -> Path:
    docs = root / "docs"
    (docs / "nested").mkdir(parents=True)
    (docs / "guide.md").write_text(GUIDE)
    (docs / "nested" / "notes.txt").write_text("The boiler room key hangs behind the door.")
    (docs / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    (docs / ".hidden.txt").write_text("not ingested")
    with zipfile.ZipFile(docs / "bundle.zip", "w") as archive:
        archive.writestr("faq.txt", "Greenhouse doors lock automatically at nine in the evening.")
    return docs


def test_ingest_ask_and_manage_collections(tmp_path: Path) -> None:
    data = tmp_path / "data"
    docs = _corpus(tmp_path)
    result = onebox("ingest", str(docs), "--collection", "garden", data_dir=data)
    assert result.returncode == 1, result.stdout + result.stderr  # one file could not be used
    out = result.stdout
    assert "Files ready" in out
    assert "3" in out
    assert "picture.png" in out
    assert "PNG" in out
    assert "hidden" not in out
    passages = re.search(r"Passages \(chunks\)\s*│\s*(\d+)", out)
    assert passages is not None, out
    assert int(passages.group(1)) >= 3

    again = onebox("ingest", str(docs / "guide.md"), "--collection", "garden", data_dir=data)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Already present" in again.stdout

    listed = onebox("collections", "list", data_dir=data)
    assert listed.returncode == 0, listed.stderr
    assert "garden" in listed.stdout

    asked = onebox(
        "ask", "How often should the succulents be watered?", "--collection", "garden",
        "--json", data_dir=data, ONEBOX_MODEL_NAME="fake-cite",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    top = answer["sources"][0]
    assert top["document"] == "guide.md"
    assert top["heading"].endswith("Watering")
    assert answer["answer"].endswith("[1]")
    assert top["cited"] is True
    assert "twelve days" in answer["support"][0]["quote"]
    assert answer["abstained"] is False
    assert set(top) >= {"document", "page", "heading", "snippet", "score"}

    pretty = onebox(
        "ask", "Where is the boiler room key?", "-c", "garden", data_dir=data,
        ONEBOX_MODEL_NAME="fake-cite",
    )  # fmt: skip
    assert pretty.returncode == 0, pretty.stderr
    assert "Sources" in pretty.stdout
    assert "notes.txt" in pretty.stdout
    # The quoted support is printed first, before the model's answer.
    quote = pretty.stdout.index("\u201cThe boiler room key hangs behind the door.\u201d [1]")
    assert quote < pretty.stdout.index("According to the documents")

    missing = onebox("ask", "anything", "-c", "nope", "--json", data_dir=data)
    assert missing.returncode == 2
    assert "not found" in missing.stderr

    created = onebox("collections", "create", "empty-one", data_dir=data)
    assert created.returncode == 0, created.stderr
    deleted = onebox("collections", "delete", "garden", "--yes", data_dir=data)
    assert deleted.returncode == 0, deleted.stderr
    listed = onebox("collections", "list", data_dir=data)
    assert "garden" not in listed.stdout
    assert "empty-one" in listed.stdout
