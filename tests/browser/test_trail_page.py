"""A build page in a real browser: the timeline's lanes, the lines, a lane click that filters."""

from __future__ import annotations

import pytest
from flightlog.web.server import create_app

from tests.browser.fleet import SERVICES, host_of, make_build

pytestmark = pytest.mark.browser


async def test_build_page_lanes_lines_and_a_lane_click_that_filters(aiohttp_server, settings, store, browser, tmp_path):
    lines = make_build(store)
    server = await aiohttp_server(create_app(settings, roles={"query"}, store=store))
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await page.goto(f"http://127.0.0.1:{server.port}/builds/B1")

    lanes = page.locator("svg.tl a.lane")
    assert await lanes.count() == 36
    labels = [" ".join(t.split()) for t in await page.locator("svg.tl .group-label").all_text_contents()]
    assert sorted(labels) == [
        f"{s} · 12 hosts · 1 gone" for s in sorted(SERVICES)
    ]
    assert await page.locator("svg.tl a.lane.gone").count() == 3
    assert await page.locator("svg.tl a.lane.has-errors").count() == 3 * 2
    rows = page.locator(".lines .chunk .row")
    assert await rows.count() == len(lines) - 33  # every build line; not the heartbeats
    assert await page.locator("a.first-error").count() == 1

    target = host_of("worker", 7)
    await page.locator(f'svg.tl a.lane[data-host="{target}"]').click()
    await page.wait_for_url(f"**/builds/B1?host={target}")
    hosts = await page.locator(".lines .chunk .row > span:nth-child(4)").all_text_contents()
    assert hosts and set(hosts) == {target}
    assert len(hosts) == 8
    assert await page.locator('svg.tl a.lane.selected').count() == 1
    assert await page.locator(".active-filters .filter").inner_text() == f"host: {target} ×"

    await page.screenshot(path=str(tmp_path / "build-page.png"), full_page=True)
    assert (tmp_path / "build-page.png").stat().st_size > 10_000
