"""Exporting a conversation (Markdown and JSON) and importing it back, on both databases."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from markdown_it import MarkdownIt

from tests.conftest import AppUnderTest
from tests.convo_helpers import XSS, branched_file, conversation_file, import_file, message, source

pytestmark = pytest.mark.anyio


async def _export(api: AppUnderTest, conversation_id: str, fmt: str) -> Any:
    response = await api.client.get(f"/api/conversations/{conversation_id}/export?format={fmt}")
    assert response.status_code == 200, response.text
    return response


def _without_export_time(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "exported_at"}


async def test_markdown_export_is_the_active_branch_with_its_sources(api: AppUnderTest) -> None:
    imported = await import_file(api.client, branched_file(system_prompt="Answer briefly."))
    response = await _export(api, imported["id"], "md")
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="Imported-\d{8}-\d{6}\.md"', disposition)
    text = response.text
    assert text.startswith("# Imported\n")
    assert "> What is **Onebox**?" in text
    assert "> A self-hosted chat [1]." in text
    assert "An old answer." not in text  # another branch
    assert "guide\\.md · Background · page 2" in text  # the cited source
    assert "other" not in text  # retrieved but not cited
    assert "> Answer briefly." in text


async def test_json_export_holds_every_branch(api: AppUnderTest) -> None:
    imported = await import_file(api.client, branched_file(temperature=0.2))
    response = await _export(api, imported["id"], "json")
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["content-disposition"].endswith('.json"')
    document = response.json()
    assert document["conversation"]["temperature"] == 0.2
    assert [(m["id"], m["parent"], m["role"]) for m in document["messages"]] == [
        ("1", None, "user"),
        ("2", "1", "assistant"),
        ("3", "1", "assistant"),
    ]
    assert document["messages"][2]["sources"][0] == source(1, "guide.md")


async def test_export_import_export_round_trips(api: AppUnderTest) -> None:
    conversation = (
        await api.client.post(
            "/api/conversations",
            json={"title": "Trip", "system_prompt": "Be terse.", "temperature": 1.25},
        )
    ).json()
    path = f"/api/conversations/{conversation['id']}"
    assert (await api.client.post(f"{path}/messages", json={"content": "one"})).status_code == 200
    assert (await api.client.post(f"{path}/messages", json={"content": "two"})).status_code == 200
    first_user = (await api.client.get(path)).json()["messages"][0]
    edited = await api.client.post(
        f"{path}/messages", json={"content": "one, edited", "parent_id": first_user["parent_id"]}
    )
    assert edited.status_code == 200
    exported = (await _export(api, conversation["id"], "json")).json()
    assert len(exported["messages"]) == 6

    again = await import_file(api.client, exported)
    assert again["id"] != conversation["id"]
    assert (again["title"], again["system_prompt"], again["temperature"]) == (
        "Trip", "Be terse.", 1.25,
    )  # fmt: skip
    re_exported = (await _export(api, again["id"], "json")).json()
    assert _without_export_time(re_exported) == _without_export_time(exported)
    markdown = (await _export(api, conversation["id"], "md")).text
    re_markdown = (await _export(api, again["id"], "md")).text
    assert markdown.split("\n", 3)[3] == re_markdown.split("\n", 3)[3]  # after the export time
    # The active branch stays active: the next message follows the edit's reply.
    sent = await api.client.post(
        f"/api/conversations/{again['id']}/messages", json={"content": "3"}
    )
    stored = (await api.client.get(f"/api/conversations/{again['id']}")).json()["messages"]
    opening = json.loads(sent.text.split("data: ", 1)[1].split("\n", 1)[0])
    newest_before = max(stored[:-2], key=lambda m: m["created_at"])
    assert opening["user_message"]["parent_id"] == newest_before["id"]


def _bad_files() -> list[tuple[str, Any, int]]:
    good = branched_file()
    cases: list[tuple[str, Any, int]] = [
        ("not an object", [1, 2], 422),
        ("wrong format", {**good, "format": "chatgpt"}, 422),
        ("wrong version", {**good, "version": 2}, 422),
        ("unknown field", {**good, "extra": True}, 422),
        ("system role", conversation_file([message("1", None, "system", "x", 1)]), 422),
        ("bad status", conversation_file([message("1", None, "user", "x", 1, status="?")]), 422),
        (
            "unknown source field",
            conversation_file(
                [message("1", None, "assistant", "x", 1, sources=[{**source(1, "a"), "x": 1}])]
            ),
            422,
        ),
        (
            "parent after child",
            conversation_file(
                [message("1", "2", "user", "x", 1), message("2", None, "assistant", "y", 2)]
            ),
            400,
        ),
        (
            "duplicate id",
            conversation_file(
                [message("1", None, "user", "x", 1), message("1", None, "user", "y", 2)]
            ),
            400,
        ),
        ("NUL in content", conversation_file([message("1", None, "user", "a\x00b", 1)]), 400),
        ("temperature", {**good, "conversation": {**good["conversation"], "temperature": 9}}, 422),
        (
            "negative tokens",
            conversation_file([message("1", None, "user", "x", 1, prompt_tokens=-1)]),
            422,
        ),
        (
            "too many messages",
            conversation_file([message(str(i), None, "user", "", 1) for i in range(2001)]),
            413,
        ),
        ("too big", conversation_file([message("1", None, "user", "x" * 70_000, 1)]), 413),
    ]
    return cases


@pytest.mark.parametrize(("case", "body", "status"), _bad_files(), ids=lambda v: str(v)[:20])
async def test_import_refuses_bad_files(
    api: AppUnderTest, case: str, body: Any, status: int
) -> None:
    response = await api.client.post("/api/conversations/import", json=body)
    assert response.status_code == status, (case, response.text)
    assert response.json()["error"]["message"]
    listed = (await api.client.get("/api/conversations")).json()
    assert listed["items"] == []


async def test_import_refuses_a_body_that_is_not_json(api: AppUnderTest) -> None:
    response = await api.client.post(
        "/api/conversations/import",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400


async def test_import_drops_unknown_models_and_foreign_collections(api: AppUnderTest) -> None:
    imported = await import_file(
        api.client, branched_file(model="gpt-nonexistent", collection_ids=["someone-elses"])
    )
    assert imported["model"] is None
    assert imported["collection_ids"] == []


def _rendered_by_a_trusting_viewer(markdown: str) -> str:
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md.render(markdown)


@pytest.mark.parametrize(
    "payload",
    [
        XSS,
        "<div>\n\n<img src=x onerror=alert(1)>\n\n</div>",
        "[click](javascript:alert(1)) and <javascript:alert(1)>",
        "[ref]\n\n[ref]: javascript:alert(1)",
        "`code` then <img src=x onerror=alert(1)> and \\`<b onclick=x>`",
        "```\n<script>alert(1)</script>\n```\nthen <script>alert(3)</script>",
    ],
)
async def test_markdown_export_is_no_html_injection_vector(api: AppUnderTest, payload: str) -> None:
    imported = await import_file(
        api.client,
        conversation_file(
            [
                message("1", None, "user", payload, 1),
                message("2", "1", "assistant", payload, 2, sources=[source(1, XSS)]),
            ],
            title=XSS,
            system_prompt=payload,
        ),
    )
    text = (await _export(api, imported["id"], "md")).text
    html = _rendered_by_a_trusting_viewer(text)
    assert not re.search(r"<(script|img|div|b)\b", html), html
    assert "javascript:" not in " ".join(re.findall(r'href="[^"]*"', html))
    # Code stays readable: a fenced block keeps its text verbatim.
    if payload.startswith("```"):
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
