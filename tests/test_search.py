"""Conversation search (titles and message text) through the real app, on SQLite FTS5 and
PostgreSQL full text search, plus the migration that builds both."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import JSON, column, insert, table, text

from onebox.chat.models import Conversation, Message
from onebox.chat.search import ConversationSearch, parse_query, snippet
from onebox.core.db import UTCDateTime, create_engine
from onebox.core.errors import BadRequestError
from onebox.core.migrate import upgrade
from onebox.state import AppState
from tests.accounts import make_account
from tests.conftest import AppUnderTest

pytestmark = pytest.mark.anyio


def state_of(api: AppUnderTest) -> AppState:
    return api.app.state.onebox  # type: ignore[no-any-return]


async def search(api: AppUnderTest, q: str, status: int = 200) -> Any:
    response = await api.client.get("/api/conversations/search", params={"q": q})
    assert response.status_code == status, response.text
    return response.json()


async def chat(api: AppUnderTest, content: str, title: str = "") -> str:
    conversation = (await api.client.post("/api/conversations", json={"title": title})).json()
    response = await api.client.post(
        f"/api/conversations/{conversation['id']}/messages", json={"content": content}
    )
    assert response.status_code == 200, response.text
    return str(conversation["id"])


async def messages_of(api: AppUnderTest, conversation_id: str) -> list[dict[str, Any]]:
    detail = (await api.client.get(f"/api/conversations/{conversation_id}")).json()
    return list(detail["messages"])


async def test_finds_message_text_and_titles(api: AppUnderTest) -> None:
    first = await chat(api, "How do I descale the espresso machine?", title="Kitchen")
    second = await chat(api, "Plan a weekend in Lisbon", title="Espresso notes")
    messages = await messages_of(api, first)

    hits = (await search(api, "ESPRESSO"))["hits"]
    # The title hit first, then both messages of the first conversation (question, echo).
    assert hits[0]["conversation_id"] == second
    assert hits[0]["message_id"] is None
    assert hits[0]["snippet"] == "<mark>Espresso</mark> notes"
    found = {hit["message_id"] for hit in hits[1:]}
    assert found == {m["id"] for m in messages}
    question = next(h for h in hits if h["message_id"] == messages[0]["id"])
    assert question == {
        "conversation_id": first,
        "title": "Kitchen",
        "archived": False,
        "message_id": messages[0]["id"],
        "role": "user",
        "snippet": "How do I descale the <mark>espresso</mark> machine?",
        "created_at": question["created_at"],
    }

    # Words must all be there; phrases keep their order; "or" and -exclusions work.
    assert (await search(api, "descale lisbon"))["hits"] == []
    assert len((await search(api, "descale or lisbon"))["hits"]) == 4
    assert len((await search(api, '"espresso machine"'))["hits"]) == 2
    assert (await search(api, '"machine espresso"'))["hits"] == []
    assert [h["conversation_id"] for h in (await search(api, "espresso -descale"))["hits"]] == [
        second
    ]
    # Archived conversations are found too, and say so.
    await api.client.patch(f"/api/conversations/{first}", json={"archived": True})
    hits = (await search(api, "descale"))["hits"]
    assert hits
    assert all(hit["archived"] for hit in hits)


@pytest.mark.parametrize(
    "query",
    [
        '"espresso',
        'espresso"',
        "espresso*",
        "espresso OR",
        "OR espresso",
        "NOT espresso",
        "espresso NEAR(a b)",
        "title:espresso",
        "(espresso",
        "espresso)",
        "^espresso",
        "esp'resso & | ! <-> :*",
        '-"x" espresso',
        "a AND AND b",
        "{espresso}",
        "e\\spresso",
        "espresso' OR 1=1 --",
        "💥 espresso",
    ],
)
async def test_search_syntax_in_the_query_is_just_text(api: AppUnderTest, query: str) -> None:
    await chat(api, "The espresso was strong")
    result = await search(api, query)  # never a 500
    assert isinstance(result["hits"], list)


@pytest.mark.parametrize("query", ["", "   ", "*", '""', "-espresso", "or OR", "-- ::"])
async def test_queries_without_words_are_refused(api: AppUnderTest, query: str) -> None:
    response = await api.client.get("/api/conversations/search", params={"q": query})
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["message"]
    too_long = await api.client.get("/api/conversations/search", params={"q": "a" * 201})
    assert too_long.status_code == 400
    assert "limit" in too_long.json()["error"]["message"]


async def test_markup_in_text_comes_back_escaped(api: AppUnderTest) -> None:
    payload = '<img src=x onerror="alert(1)"> payload <script>alert(2)</script>'
    await chat(api, payload, title='<b onmouseover="x()">payload</b> title')
    hits = (await search(api, "payload"))["hits"]
    assert len(hits) == 3
    for hit in hits:
        markup = hit["snippet"].replace("<mark>", "").replace("</mark>", "")
        assert "<" not in markup
        assert ">" not in markup
        assert "<mark>payload</mark>" in hit["snippet"]
    assert hits[0]["snippet"] == (
        "&lt;b onmouseover=&quot;x()&quot;&gt;<mark>payload</mark>&lt;/b&gt; title"
    )


async def test_index_follows_edits_renames_and_deletes(api: AppUnderTest) -> None:
    state = state_of(api)
    conversation_id = await chat(api, "zebra crossing")
    message_id = (await messages_of(api, conversation_id))[0]["id"]
    assert len((await search(api, "zebra"))["hits"]) == 3  # auto title, question, echo

    async with state.sessionmaker() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        message.content = "giraffe crossing"
        await session.commit()
    hits = (await search(api, "giraffe"))["hits"]
    assert [h["message_id"] for h in hits] == [message_id]
    assert {h["message_id"] for h in (await search(api, "zebra"))["hits"]} != {message_id}

    await api.client.patch(f"/api/conversations/{conversation_id}", json={"title": "Okapi"})
    assert [h["message_id"] for h in (await search(api, "okapi"))["hits"]] == [None]
    assert all(h["message_id"] for h in (await search(api, "zebra"))["hits"])

    await api.client.delete(f"/api/conversations/{conversation_id}")
    for word in ("zebra", "giraffe", "okapi", "crossing"):
        assert (await search(api, word))["hits"] == []


async def test_only_the_callers_own_conversations(api: AppUnderTest) -> None:
    state = state_of(api)
    mine = await chat(api, "secret walrus plans")
    # The first account takes over the local user's conversations; the second is a stranger.
    assert await make_account(state, "me@example.com") == state.local_user_id
    other_user = await make_account(state, "other@example.com")
    async with state.sessionmaker() as session:
        for owner, widget in ((other_user, None), (state.local_user_id, "k" * 36)):
            conversation = Conversation(
                owner_id=owner, title="walrus", widget_key_id=widget, visitor_id=widget
            )
            session.add(conversation)
            await session.flush()
            session.add(Message(conversation_id=conversation.id, role="user", content="walrus"))
        await session.commit()

    async with state.sessionmaker() as session:
        searcher = ConversationSearch(session)
        hits = await searcher.search(state.local_user_id, parse_query("walrus"), limit=20)
        assert {hit.conversation_id for hit in hits} == {mine}
        others = await searcher.search(other_user, parse_query("walrus"), limit=20)
        assert {hit.title for hit in others} == {"walrus"}
        assert len(others) == 2


def test_snippet_is_cut_around_the_first_match() -> None:
    words = parse_query("needle").highlight
    text = " ".join(["hay"] * 100) + " the Needle <here> & " + " ".join(["straw"] * 100)
    cut = snippet(text, words)
    assert cut.startswith("…")
    assert cut.endswith("…")
    assert "the <mark>Needle</mark> &lt;here&gt; &amp;" in cut
    assert len(cut) < 260
    assert snippet("no match at all", words) == "no match at all"
    with pytest.raises(BadRequestError):
        parse_query("- * ! ()")


async def test_migration_fills_the_index_and_goes_back(database_url: str) -> None:
    engine = create_engine(database_url)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        await upgrade(engine)
        await _downgrade(engine, "0006")  # PostgreSQL's test database is already at head
        async with engine.begin() as connection:
            # The tables as revision 0006 has them (the models describe the newest).
            await connection.execute(
                insert(_table("users", "id", "email", "display_name", "is_admin", "is_active")),
                [{"id": "u1", "email": "u1@example.com", "display_name": "", "is_admin": False,
                  "is_active": True, "created_at": now, "updated_at": now}],
            )  # fmt: skip
            await connection.execute(
                insert(_table("conversations", "id", "owner_id", "title", "pinned", "archived")),
                [{"id": "c1", "owner_id": "u1", "title": "Old pelican", "pinned": False,
                  "archived": False, "collection_ids": [], "created_at": now, "updated_at": now}],
            )  # fmt: skip
            await connection.execute(
                insert(_table("messages", "id", "conversation_id", "role", "content", "status")),
                [{"id": "m1", "conversation_id": "c1", "role": "user",
                  "content": "a stored flamingo", "status": "complete", "created_at": now}],
            )  # fmt: skip
        await upgrade(engine)
        async with engine.connect() as connection:
            from sqlalchemy.ext.asyncio import AsyncSession

            async with AsyncSession(bind=connection) as session:
                searcher = ConversationSearch(session)
                old = await searcher.search("u1", parse_query("flamingo or pelican"), limit=5)
            assert {(hit.conversation_id, hit.message_id) for hit in old} == {
                ("c1", None),
                ("c1", "m1"),
            }
            source = await connection.scalar(text("SELECT title_source FROM conversations"))
            assert source == "auto"
        await _downgrade(engine, "0006")
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda c: {col["name"] for col in _inspect(c).get_columns("conversations")}
            )
            assert "title_source" not in columns
            assert "search_vector" not in columns
            tables = await connection.run_sync(lambda c: set(_inspect(c).get_table_names()))
            assert not {t for t in tables if "_fts" in t}
            # The old rows are untouched, and writing still works without the triggers.
            await connection.execute(text("UPDATE messages SET content = 'x' WHERE id = 'm1'"))
            assert await connection.scalar(text("SELECT count(*) FROM messages")) == 1
        await upgrade(engine)  # and up again
    finally:
        await engine.dispose()


def _table(name: str, *columns: str) -> Any:
    extra = [column("created_at", UTCDateTime())]
    if name != "messages":
        extra.append(column("updated_at", UTCDateTime()))
    if name == "conversations":
        extra.append(column("collection_ids", JSON()))
    return table(name, *(column(c) for c in columns), *extra)


def _inspect(connection: Any) -> Any:
    from sqlalchemy import inspect

    return inspect(connection)


async def _downgrade(engine: Any, revision: str) -> None:
    from alembic import command

    from onebox.core.migrate import alembic_config

    url = engine.url.render_as_string(hide_password=False)

    def run(connection: Any) -> None:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)
