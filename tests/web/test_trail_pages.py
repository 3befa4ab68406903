"""Build, deploy, context and hosts pages: the timeline, its lane links, first error, deep links."""

from __future__ import annotations

import re
from html import unescape

from tests.browser.fleet import host_of, make_build
from tests.query.data import insert, make_fleet, make_line
from tests.web.test_pages import _page


def _lanes(html: str) -> list[tuple[str, str]]:
    """(data-host, href) of every timeline lane."""
    return [
        (host, unescape(href))
        for href, host in re.findall(r'<a class="lane[^"]*" href="([^"]+)" data-host="([^"]+)"', html)
    ]


async def test_build_page_draws_one_lane_per_host_grouped_by_service(client, store):
    make_build(store)
    html, _ = await _page(client, "/builds/B1")
    lanes = _lanes(html)
    assert len(lanes) == 36
    assert [h for h, _ in lanes[:12]] == [host_of("api", n) for n in range(12)]  # grouped, by first line
    assert all(href == f"/builds/B1?host={h}" for h, href in lanes)
    assert html.count('class="lane gone') == 3
    assert html.count('class="tick"') == 6
    assert "<svg" in html and "<script" not in html and " style=" not in html


async def test_a_lane_link_filters_the_lines_to_its_host_and_marks_the_lane(client, store):
    make_build(store)
    html, _ = await _page(client, "/builds/B1")
    href = dict(_lanes(html))[host_of("worker", 3)]
    html, page = await _page(client, href)
    assert {row["cells"][3] for row in page.rows} == {host_of("worker", 3)}
    assert len(page.rows) == 8
    assert html.count("selected") >= 1 and re.search(r'class="lane selected[^"]*" href="[^"]*" data-host="worker-03"', html)


async def test_first_error_link_opens_the_page_at_the_first_error(client, store):
    lines = make_build(store)
    first_error = min((r for r in lines if r["level"] == "error"), key=lambda r: (r["ts_ns"], r["seq"]))
    ref = f"{first_error['ts_ns']}-{first_error['seq']}"
    _, page = await _page(client, "/builds/B1?limit=5")
    link = page.link(r"^/builds/B1\?at=")
    assert link.endswith(f"#L{ref}")
    _, at_page = await _page(client, link.split("#")[0] + "&limit=5")
    assert at_page.rows[0]["id"] == f"L{ref}"
    # on a page that holds it, the link is just the anchor
    html, _ = await _page(client, "/builds/B1")
    assert f'class="first-error" href="#L{ref}"' in html


async def test_every_line_links_its_context_and_the_context_page_links_back(client, store):
    fleet = make_fleet(store, builds=2)
    line = fleet.of("build_id", "b001")[7]
    ref = f"{line['ts_ns']}-{line['seq']}"
    _, page = await _page(client, "/builds/b001")
    assert f"/context?ref={ref}" in page.links
    html, ctx = await _page(client, f"/context?ref={ref}&before=3&after=3")
    focus = [row for row in ctx.rows if "focus" in row["class"]]
    assert [row["id"] for row in focus] == [f"L{ref}"]
    assert {row["cells"][3] for row in ctx.rows} == {line["host"]}
    assert ctx.link(rf"^/builds/b001\?at={ref}#L{ref}$")
    await _page(client, "/context?ref=bad", status=400)


async def test_expand_toggle_adds_the_lines_sharing_a_trace_id(client, store):
    insert(
        store,
        [
            make_line(1_795_867_200_000_000_000, service="webhook", trace_id="t9", message="push received"),
            make_line(1_795_867_201_000_000_000, build_id="X", trace_id="t9", message="build started"),
        ],
    )
    html, page = await _page(client, "/builds/X")
    assert [m.split(" trace ")[0] for m in page.messages()] == ["build started"]
    html, expanded = await _page(client, page.link(r"^/builds/X\?expand=1$"))
    assert expanded.messages()[0].startswith("push received")
    assert "via trace_id=t9" in html


async def test_hosts_page_lists_hosts_by_service_with_gone_marked(client, store):
    make_build(store)
    html, page = await _page(client, "/hosts")
    assert html.count('class="gone"') == 3
    assert "36 hosts, 3 gone" in html
    assert "/builds/B1" in page.links and "/deploys/D1" in page.links
    html, gone = await _page(client, page.link(r"^/hosts\?gone=1$"))
    assert "3 hosts" in html and "live-badge" not in html
    html, _ = await _page(client, "/hosts?service=worker")
    assert "worker-00" in html and "api-00" not in html
    await _page(client, "/hosts?gone=perhaps", status=400)


async def test_index_and_build_page_show_status(client, store):
    insert(store, [make_line(build_id="ok1"), make_line(build_id="bad1", level="fatal")])
    html, _ = await _page(client, "/")
    assert 'status-ok">ok' in html and 'status-failed">failed' in html
    html, _ = await _page(client, "/builds/bad1")
    assert 'status-failed">failed' in html


async def test_new_pages_carry_no_inline_script_or_style(client, store):
    lines = make_build(store)
    ref = f"{lines[0]['ts_ns']}-{lines[0]['seq']}"
    for path in ("/builds/B1", "/deploys/D1", "/hosts", f"/context?ref={ref}", "/builds/B1?expand=2"):
        resp = await client.get(path)
        html = await resp.text()
        assert resp.status == 200, path
        assert "<script" not in html and " style=" not in html and "<style" not in html, path
        assert not re.search(r"<[^>]+\son[a-z]+=", html), path
