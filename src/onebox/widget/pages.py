"""The demo page: a plain page that embeds the widget exactly as a customer's site would,
with the key's current settings. No inline script or style, so its policy is strict."""

from __future__ import annotations

import html
import re

WIDGET_KEY = re.compile(r"^obw_[A-Za-z0-9_-]{20,100}$")
DEMO_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <title>Onebox widget demo</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/static/widget-demo.css">
</head>
<body>
  <main class="demo">
    <p class="demo-kicker">Onebox widget demo</p>
    <h1>Your website</h1>
    {body}
  </main>
  {script}
</body>
</html>
"""


def demo_page(key: str | None) -> tuple[int, str]:
    """The status and the page for ``/widget/demo?key=…``."""
    if not key:
        body = (
            "<p>Add <code>?key=obw_…</code> to this address to try a widget key. Create one "
            'under <a href="/">API keys</a> (type: widget).</p>'
        )
        return 200, _PAGE.format(body=body, script="")
    if not WIDGET_KEY.fullmatch(key):
        body = "<p>That is not a widget key: widget keys start with <code>obw_</code>.</p>"
        return 400, _PAGE.format(body=body, script="")
    safe = html.escape(key, quote=True)
    body = (
        "<p>This page stands in for your site. The chat button in the corner is the widget, "
        "with the key's current settings: what your visitors will see.</p>"
        "<p>The line that adds it:</p>"
        f'<pre class="demo-snippet" tabindex="0">{html.escape(script_tag("", key))}</pre>'
    )
    script = f'<script src="/widget.js" data-key="{safe}" async></script>'
    return 200, _PAGE.format(body=body, script=script)


def script_tag(base_url: str, key: str) -> str:
    """The one line a site pastes into its pages."""
    return f'<script src="{base_url.rstrip("/")}/widget.js" data-key="{key}" async></script>'
