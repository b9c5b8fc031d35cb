"""Caps on what a small file can make a parser do: a PDF page that inflates to megabytes of
drawing instructions and HTML nested absurdly deep are refused with a clear reason, before
the parser spends minutes on them; ordinary files (sloppy HTML included) still parse."""

from __future__ import annotations

import pytest

from onebox.documents.ingestion.parsing import ParseError, ParseLimits, parse_document
from onebox.documents.ingestion.parsing.html import parse_html
from onebox.documents.ingestion.parsing.html_depth import estimated_depth
from onebox.documents.ingestion.preparing import prepare_document
from tests import documents_samples as samples

MB = 1024 * 1024


@pytest.mark.parametrize("in_form", [False, True], ids=["content-stream", "form-xobject"])
def test_pdf_page_inflating_past_the_cap_is_refused(in_form: bool) -> None:
    data = samples.pdf_with_inflated_page(16 * MB, in_form=in_form)
    assert len(data) < 100_000  # a small file…
    with pytest.raises(ParseError) as caught:
        parse_document("bomb.pdf", data)
    assert str(caught.value) == (
        "bomb.pdf: page 1 inflates to more than 4 MB of drawing instructions, the limit per "
        "page (reading its text would take minutes); the file was refused"
    )


def test_pdf_page_cap_follows_the_limits() -> None:
    data = samples.pdf_with_inflated_page(200_000)
    assert "Hello world" in parse_document("page.pdf", data).text
    with pytest.raises(ParseError, match=r"page 1 inflates to more than 0.125 MB"):
        parse_document("page.pdf", data, ParseLimits(max_pdf_page_content_bytes=128 * 1024))


@pytest.mark.parametrize("depth", [600, 100_000])
def test_deeply_nested_html_is_refused(depth: int) -> None:
    with pytest.raises(ParseError) as caught:
        parse_document("deep.html", samples.nested_html(depth))
    assert str(caught.value) == (
        "deep.html nests its HTML elements more than 512 levels deep, the limit (parsing "
        "time grows with the square of the depth); the file was refused"
    )


def test_html_nested_within_the_limit_parses() -> None:
    parsed = parse_document("deep.html", samples.nested_html(500))
    assert parsed.text == "deep text"
    with pytest.raises(ParseError, match="more than 64 levels deep"):
        parse_document("deep.html", samples.nested_html(100), ParseLimits(max_html_depth=64))


SLOPPY = (
    "<html><head><title>Sloppy</title><script>var t = '" + "<div>" * 3000 + "';</script>"
    "<style>p > b { color: red }</style></head><body><!--" + "<div>" * 3000 + "-->"
    "<ul>" + "<li><b>item</b>" * 3000 + "</ul>"
    "<table>" + "<tr><td>a<td>b" * 3000 + "</table>" + "<p>para" * 3000 + "<dl>"
    + "<dt>term<dd>definition" * 3000 + "</dl><select>" + "<option>choice" * 3000
    + "</select><svg>" + '<path d="M0 0"/>' * 3000 + "</svg><p>" + "line<br>" * 3000
    + "<img src=x>" * 3000 + "</body></html>"
)  # fmt: skip


def test_sloppy_but_ordinary_html_is_not_mistaken_for_deep_nesting() -> None:
    assert estimated_depth(SLOPPY, stop_above=10**9) < 10
    parsed = parse_html("sloppy.html", SLOPPY, max_depth=16)
    for word in ("item", "definition", "para", "line"):
        assert word in parsed.text


def test_depth_estimate_stops_early_on_absurd_nesting() -> None:
    assert estimated_depth("<div>" * 1_000_000, stop_above=2048) == 2049
    assert estimated_depth("<span>" * 10 + "</span>" * 10 + "<em>", stop_above=100) == 10


def test_prepare_document_parses_and_chunks_in_one_call() -> None:
    prepared = prepare_document(
        "guide.md", b"# Guide\n\n" + b"Some words here. " * 200, ParseLimits(), 300, 50
    )
    assert prepared.media_type == "text/markdown"
    assert len(prepared.drafts) > 5
    assert all(draft.heading_path == ["Guide"] for draft in prepared.drafts)
