"""The search page (histogram, facets, export links), the tail page and the SQL console page."""

from __future__ import annotations

import re
import time

from tests.query.data import NS, insert, make_line
from tests.web.test_pages import _page


def _lines(now):
    return [
        make_line(now - 50 * 60 * NS, level="error", service="api", message="disk full", build_id="b1"),
        make_line(now - 20 * 60 * NS, level="warn", service="worker", message="disk slow", trace_id="t1"),
        make_line(now - 60 * NS, level="info", service="api", message="disk fine"),
    ]


async def test_search_page_has_histogram_facets_export_links_and_lines(client, store):
    now = time.time_ns()
    insert(store, _lines(now))
    html, page = await _page(client, "/search?q=disk")
    assert [m.strip() for m in page.messages()][:1] == ["disk fine"]
    assert '<svg class="hist"' in html
    assert html.count('<rect class="bar lv-') == 3
    assert "3 matching lines" in html
    # facets link to narrower and wider queries
    assert page.link(r"^/search\?q=disk\+service%3Aapi$")
    assert page.link(r"^/search\?q=disk\+-service%3Aapi$")
    assert page.link(r"^/search\?q=disk\+level%3Awarn$")
    assert page.link(r"^/api/v1/search\?q=disk&format=ndjson$")
    assert page.link(r"^/api/v1/search\?q=disk&format=csv$")
    assert page.link(r"^/builds/b1$") and page.link(r"^/search\?q=trace_id%3At1$")
    assert page.link(r"^/context\?ref=")


async def test_search_page_with_or_and_negation(client, store):
    insert(store, _lines(time.time_ns()))
    html, page = await _page(client, "/search?q=%28level%3Aerror+OR+level%3Awarn%29+-service%3Aworker")
    assert [m.strip() for m in page.messages()] == ["disk full build b1"]


async def test_search_page_explains_a_bad_query_with_its_position(client, store):
    html, _ = await _page(client, "/search?q=service%3Aapi+%28oops", status=400)
    assert "without its &#39;)&#39;" in html or "without its ')'" in html
    assert "position 13" in html


async def test_tail_page_shows_recent_lines_and_loads_its_script_from_a_file(client, store):
    insert(store, _lines(time.time_ns()))
    html, page = await _page(client, "/tail?q=service%3Aapi")
    assert [m.strip() for m in page.messages()] == ["disk fine"]  # the last 15 minutes, oldest first
    assert '<script src="/static/tail.js" defer></script>' in html
    assert 'data-stream="/api/v1/tail?q=service%3Aapi"' in html
    assert "<noscript>" in html
    resp = await client.get("/static/tail.js")
    assert resp.status == 200 and "EventSource" in await resp.text()


async def test_sql_page_runs_a_select_and_shows_a_table(client, store):
    insert(store, _lines(time.time_ns()))
    html, _ = await _page(client, "/sql")
    assert 'action="/sql" method="post"' in html and "Examples" in html
    resp = await client.post(
        "/sql", data={"sql": "SELECT service, count() AS n FROM logs GROUP BY service ORDER BY service"}
    )
    assert resp.status == 200
    html = await resp.text()
    cells = re.findall(r"<td>([^<]*)</td>", html)
    assert cells == ["api", "2", "worker", "1"]
    assert "<th" in html and ">service</th>" in html


async def test_sql_page_downloads_and_refusals(client, store):
    insert(store, _lines(time.time_ns()))
    resp = await client.post("/sql", data={"sql": "SELECT message FROM logs ORDER BY ts", "format": "csv"})
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert (await resp.text()).splitlines() == ["message", "disk full", "disk slow", "disk fine"]
    resp = await client.post("/sql", data={"sql": "SELECT message FROM logs ORDER BY ts", "format": "ndjson"})
    assert resp.status == 200 and resp.content_type == "application/x-ndjson"
    resp = await client.post("/sql", data={"sql": "DROP TABLE logs"})
    assert resp.status == 400
    assert "only SELECT" in await resp.text()
    assert store.query("SELECT count() FROM logs").scalar() == 3


async def test_new_pages_carry_no_inline_script_style_or_handlers(client, store):
    insert(store, _lines(time.time_ns()))
    for path in ("/search?q=disk", "/tail", "/sql", "/sql?sql=SELECT+1", "/search?q=%28"):
        html = await (await client.get(path)).text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert " style=" not in html and "<style" not in html, path
        assert not re.search(r"\son[a-z]+=", html), path
