"""Log lines carrying markup, in a real browser: shown as text on every page, and nothing runs."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from flightlog.web.server import create_app

from tests.security.conftest import wait_for_rows

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<svg onload=alert(1)>",
    "javascript:alert(1)",
    "'><iframe srcdoc=\"<script>alert(1)</script>\">",
]

pytestmark = pytest.mark.browser


async def test_markup_in_log_lines_renders_as_text_and_no_script_runs(aiohttp_server, settings, store, browser):
    server = await aiohttp_server(create_app(settings, store=store))
    lines = [
        {"msg": f"evil {n} {payload}", "service": payload, "host": f"h{n}", "build_id": "B<1>",
         "deploy_id": 'D"1', "level": "error", "attrs": {payload: payload}}
        for n, payload in enumerate(PAYLOADS)
    ]
    page = await browser.new_page()
    dialogs, errors = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    base = f"http://127.0.0.1:{server.port}"
    resp = await page.request.post(f"{base}/api/v1/logs", data=b"\n".join(map(orjson.dumps, lines)))
    assert resp.status == 200
    await wait_for_rows(store, "SELECT count() FROM logs", len(lines))
    ref = orjson.loads(await (await page.request.get(f"{base}/api/v1/search?q=&from=1d")).body())["lines"][0]["ref"]

    for path in ["/search?q=&from=1d", "/builds/B%3C1%3E", "/deploys/D%221", "/", "/hosts",
                 f"/context?ref={ref}", "/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
                 "/sql?sql=SELECT%20message%20FROM%20logs"]:
        await page.goto(base + path)
        await page.wait_for_load_state("load")
        html = await page.content()
        assert "<script>alert(1)</script>" not in html, path
        assert await page.locator("img[src=x], svg[onload], iframe").count() == 0, path
        assert await page.evaluate("window.__xss === undefined")
        if path.startswith("/search?q=&") or path.startswith("/builds/"):
            text = await page.locator("main").inner_text()
            for payload in PAYLOADS[:2]:
                assert payload in text, (path, payload)
    assert dialogs == [], f"a script ran: {dialogs}"
    # the CSP forbids inline script: even markup that slipped through could not run
    resp = await page.goto(base + "/search")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
