"""The read-only page a share link opens: server-rendered, no script at all, one
stylesheet from Onebox, messages through the sanitising Markdown renderer and every other
string escaped. Nothing about the owner (no email, no other conversation) is on it."""

from __future__ import annotations

import html
from typing import Any

from onebox.chat.models import Message
from onebox.chat.rendering import render_markdown
from onebox.sharing.service import SharedView

SHARE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
SHARE_HEADERS = {
    "Content-Security-Policy": SHARE_CSP,
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_ROLE_NAMES = {"user": "User", "assistant": "Assistant"}

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="robots" content="noindex, nofollow">
  <meta name="referrer" content="no-referrer">
  <title>{title}</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/static/share.css">
</head>
<body>
  <main class="shared">
    <p class="shared-kicker">Shared conversation · read-only</p>
    <h1>{heading}</h1>
    {body}
  </main>
</body>
</html>
"""


def _escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def _source(source: dict[str, Any]) -> str:
    where = [_escape(source.get("document") or "document")]
    if source.get("heading"):
        where.append(_escape(source["heading"]))
    if source.get("page") is not None:
        where.append(f"page {_escape(source['page'])}")
    cited = ' <span class="shared-cited">cited</span>' if source.get("used") else ""
    snippet = source.get("snippet") or ""
    quote = f'<blockquote class="shared-snippet">{_escape(snippet)}</blockquote>' if snippet else ""
    return (
        f'<li><span class="shared-number">[{_escape(source.get("number", "?"))}]</span> '
        f"{' · '.join(where)}{cited}{quote}</li>"
    )


def _message(message: Message) -> str:
    role = message.role if message.role in _ROLE_NAMES else "user"
    status = "" if message.status == "complete" else f" ({_escape(message.status)})"
    parts = [
        f'<article class="shared-message shared-{role}" aria-label="{_ROLE_NAMES[role]}">',
        f'<h2 class="shared-role">{_ROLE_NAMES[role]}{status}</h2>',
        f'<div class="shared-content">{render_markdown(message.content)}</div>',
    ]
    sources = [s for s in message.sources or [] if isinstance(s, dict)]
    if sources:
        items = "".join(_source(s) for s in sources)
        parts.append(
            '<section class="shared-sources" aria-label="Sources"><h3>Sources</h3>'
            f'<ol class="shared-source-list">{items}</ol></section>'
        )
    parts.append("</article>")
    return "".join(parts)


def shared_page(view: SharedView) -> str:
    title = view.conversation.title or "Untitled conversation"
    body = "\n".join(_message(m) for m in view.messages) or "<p>No messages.</p>"
    return _PAGE.format(title=_escape(title), heading=_escape(title), body=body)


def not_found_page() -> str:
    body = "<p>This link does not exist or was revoked by its owner.</p>"
    return _PAGE.format(title="Link not found", heading="Link not found", body=body)
