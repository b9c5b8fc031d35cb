"""Searching a user's conversations: titles and message text.

One interface, two engines: SQLite FTS5 (external-content tables kept in sync by triggers)
and PostgreSQL full text search (generated ``tsvector`` columns, GIN indexes,
``websearch_to_tsquery``); migration 0008 builds both. The query the user typed is parsed
here, once, into words, phrases, ``-exclusions`` and ``or``, and written out again for the
engine in a form that cannot be a syntax error: every word is made of letters and digits
only, so FTS5 or tsquery operators typed by the user are just separators.

Snippets are built here too, the same for both engines: the text is escaped first and only
then are the matched words wrapped in ``<mark>``, so a snippet is safe HTML whatever the
message or title contains.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, column, func, literal_column, select
from sqlalchemy import table as table_clause
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.chat.models import Conversation, Message
from onebox.core.errors import BadRequestError

MAX_QUERY_CHARS = 200
MAX_TERMS = 16
SNIPPET_CHARS = 160

# Objects migration 0008 adds that the models do not describe (alembic's comparison skips
# them; FTS5 makes its own shadow tables named after the virtual table).
SEARCH_TABLES = ("messages_fts", "conversations_fts")
SEARCH_COLUMNS = ("search_vector",)
SEARCH_INDEXES = ("ix_messages_search", "ix_conversations_search")

_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def is_search_object(name: str | None, kind: str) -> bool:
    """For alembic's ``include_name``: whether ``name`` belongs to the search machinery."""
    if name is None:
        return False
    if kind == "table":
        return any(name == table or name.startswith(f"{table}_") for table in SEARCH_TABLES)
    if kind == "column":
        return name in SEARCH_COLUMNS
    if kind == "index":
        return name in SEARCH_INDEXES
    return False


def fold(word: str) -> str:
    """Case and accents folded, as FTS5's unicode61 tokenizer compares words."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@dataclass(frozen=True, slots=True)
class Term:
    words: tuple[str, ...]  # one word, or a phrase
    negated: bool = False


@dataclass
class SearchQuery:
    """``groups``: alternatives (``or``); each group's terms must all hold."""

    groups: list[list[Term]] = field(default_factory=list)

    @property
    def highlight(self) -> set[str]:
        return {fold(w) for g in self.groups for t in g if not t.negated for w in t.words}

    def fts5(self) -> str:
        """The FTS5 MATCH expression: every word quoted, NOT after the words it excludes."""

        def phrase(term: Term) -> str:
            return '"' + " ".join(term.words) + '"'

        rendered = []
        for group in self.groups:
            positive = " AND ".join(phrase(t) for t in group if not t.negated)
            negative = "".join(f" NOT {phrase(t)}" for t in group if t.negated)
            rendered.append(f"({positive}{negative})")
        return " OR ".join(rendered)

    def websearch(self) -> str:
        """The same query in ``websearch_to_tsquery`` syntax."""

        def phrase(term: Term) -> str:
            body = term.words[0] if len(term.words) == 1 else '"' + " ".join(term.words) + '"'
            return f"-{body}" if term.negated else body

        return " or ".join(" ".join(phrase(t) for t in group) for group in self.groups)


def parse_query(raw: str) -> SearchQuery:
    """Words, "quoted phrases", -exclusions and ``or``, as in a web search box. Anything
    else is a separator. Raises a 400 when nothing is left to look for."""
    if len(raw) > MAX_QUERY_CHARS:
        raise BadRequestError(
            f"q is {len(raw)} characters; the limit is {MAX_QUERY_CHARS}", param="q"
        )
    groups: list[list[Term]] = [[]]
    count = 0
    for match in _TOKEN.finditer(raw):
        negated, quoted, bare = match.group(1), match.group(2), match.group(3)
        if bare is not None and bare.casefold() == "or":
            if groups[-1]:
                groups.append([])
            continue
        if bare is not None:
            negated = "-" if bare.startswith("-") else ""
            quoted = bare
        words = tuple(_WORD.findall(quoted or ""))
        if not words or count >= MAX_TERMS:
            continue
        count += 1
        groups[-1].append(Term(words[:MAX_TERMS], negated=bool(negated)))
    # A group that only excludes would match nearly everything: it is dropped.
    query = SearchQuery([g for g in groups if any(not t.negated for t in g)])
    if not query.groups:
        raise BadRequestError(
            "q must contain at least one word to look for (letters or digits)", param="q"
        )
    return query


def snippet(content: str, words: set[str], width: int = SNIPPET_CHARS) -> str:
    """An HTML excerpt of ``content`` around the first matched word: escaped text, with
    every matched word in ``<mark>``."""
    flat = " ".join(content.split())
    matches = [m for m in _WORD.finditer(flat) if fold(m.group()) in words]
    start, end = 0, min(len(flat), width)
    if matches and matches[0].end() > end:
        start = max(0, matches[0].start() - width // 3)
        space = flat.rfind(" ", 0, start + 1)
        start = space + 1 if space > start - 20 else start
        end = min(len(flat), start + width)
    if end < len(flat):
        space = flat.rfind(" ", start, end)
        end = space if space > start + width // 2 else end
    pieces = ["…" if start > 0 else ""]
    position = start
    for match in matches:
        if match.start() < start or match.end() > end:
            continue
        pieces.append(html.escape(flat[position : match.start()]))
        pieces.append(f"<mark>{html.escape(match.group())}</mark>")
        position = match.end()
    pieces.append(html.escape(flat[position:end]))
    if end < len(flat):
        pieces.append("…")
    return "".join(pieces)


@dataclass(frozen=True, slots=True)
class SearchHit:
    conversation_id: str
    title: str
    archived: bool
    message_id: str | None  # None: the title matched
    role: str | None
    snippet: str
    created_at: datetime


class ConversationSearch:
    """All search SQL; the engine is chosen by the session's dialect."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"

    def _owned(self, statement: Select, owner_id: str) -> Select:  # type: ignore[type-arg]
        # The caller's own conversations; widget conversations are read per key only.
        return statement.where(
            Conversation.owner_id == owner_id, Conversation.widget_key_id.is_(None)
        )

    def _matching(self, statement: Select, table: str, query: SearchQuery) -> Select:  # type: ignore[type-arg]
        """``statement`` (over ``table``) narrowed to the rows that match, best first."""
        if self.postgres:
            tsquery = func.websearch_to_tsquery(
                literal_column("'simple'::regconfig"), bindparam("websearch", query.websearch())
            )
            vector: ColumnElement[Any] = literal_column(f"{table}.search_vector")
            return statement.where(vector.op("@@")(tsquery)).order_by(
                func.ts_rank(vector, tsquery).desc()
            )
        fts = table_clause(f"{table}_fts", column("rowid"), column("rank"))
        return (
            statement.join(fts, fts.c.rowid == literal_column(f"{table}.rowid"))
            .where(literal_column(fts.name).op("MATCH")(bindparam("match", query.fts5())))
            .order_by(fts.c.rank)  # bm25
        )

    async def search(self, owner_id: str, query: SearchQuery, *, limit: int) -> list[SearchHit]:
        words = query.highlight
        hits: list[SearchHit] = []

        titles = self._owned(
            select(Conversation.id, Conversation.title, Conversation.archived,
                   Conversation.updated_at),
            owner_id,
        )  # fmt: skip
        titles = self._matching(titles, "conversations", query)
        titles = titles.order_by(Conversation.updated_at.desc()).limit(limit)
        for row in (await self.session.execute(titles)).all():
            hits.append(
                SearchHit(row.id, row.title, row.archived, None, None,
                          snippet(row.title, words), row.updated_at)
            )  # fmt: skip

        messages = self._owned(
            select(Message.id, Message.conversation_id, Message.role, Message.content,
                   Message.created_at, Conversation.title, Conversation.archived)
            .join(Conversation, Conversation.id == Message.conversation_id),
            owner_id,
        )  # fmt: skip
        messages = self._matching(messages, "messages", query)
        messages = messages.order_by(Message.created_at.desc(), Message.id).limit(limit)
        for row in (await self.session.execute(messages)).all():
            hits.append(
                SearchHit(row.conversation_id, row.title, row.archived, row.id, row.role,
                          snippet(row.content, words), row.created_at)
            )  # fmt: skip
        return hits[:limit]
