"""The alerts pages in a real browser: write a rule in the form, preview the groups that would
fire, save it, watch it fire with its value graph, send a test notification, silence a group —
with a log line that carries markup shown as text, never run."""

from __future__ import annotations

import asyncio

import pytest
from flightlog.web.server import create_app
from slack_sdk.models.blocks import Block

from tests.query.alerts.conftest import lines, receiver  # noqa: F401  (the receiver fixture)
from tests.query.alerts.test_notify import _unescaped_specials

pytestmark = pytest.mark.browser

HOSTILE = '<img src=x onerror="window.__pwned=1">'


async def test_write_preview_save_test_and_silence_a_rule_in_the_browser(
    aiohttp_server, settings, store, browser, receiver, tmp_path  # noqa: F811
):
    lines(store, 4, host=HOSTILE, level="error", message=f"payment failed {HOSTILE}")
    lines(store, 1, host="web-2", level="error")
    server = await aiohttp_server(create_app(settings, roles={"query"}, store=store))
    base = f"http://127.0.0.1:{server.port}"
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await page.goto(base + "/alerts")
    await page.click("text=New rule")
    await page.fill("input[name=name]", "payment errors")
    await page.fill("textarea[name=query]", "level:error")
    await page.fill("input[name=condition]", "count > 2")
    await page.fill("input[name=group_by]", "host")
    await page.fill("input[name=interval]", "5s")
    await page.select_option("select[name=channel_type]", "slack")
    await page.fill("input[name=channel_url]", receiver.url + "/slack")

    await page.click("button.preview")
    await page.wait_for_selector(".preview-result")
    assert "1 of 2 groups would fire now" in await page.inner_text(".preview-result h2")
    first = page.locator(".preview-result tr.group.fires")
    assert await first.count() == 1
    assert HOSTILE in await first.inner_text()  # shown as text
    assert await page.locator(".preview-result img").count() == 0
    # the form kept what was typed, except the channel URL (never echoed back)
    assert await page.input_value("input[name=condition]") == "count > 2"

    await page.fill("input[name=channel_url]", receiver.url + "/slack")
    await page.click("button.save")
    await page.wait_for_url("**/alerts/rules/payment%20errors")
    for _ in range(100):  # the evaluator picks the new rule up on its next tick
        if await page.locator("svg.values polyline").count():
            break
        await asyncio.sleep(0.2)
        await page.reload()
    assert await page.locator("svg.values polyline").count() >= 1
    assert await page.locator(".rule-groups .state-firing").count() == 1
    await receiver.wait_for(lambda r: len(r) >= 1)
    alert = receiver.on("/slack")[0].json()
    for block in alert["blocks"]:
        Block.parse(block).validate_json()
    assert "&lt;img src=x" in str(alert) and _unescaped_specials(alert) == []  # mrkdwn escaped

    await page.click("button.test")
    await page.wait_for_selector(".test-results li.ok")
    assert "delivered" in await page.inner_text(".test-results")

    await page.locator("form.silence-group button").first.click()
    await page.wait_for_selector(".notice")
    await page.goto(base + "/alerts")
    assert await page.locator("tr.silence").count() == 1
    assert await page.locator('tr.rule[data-rule="payment errors"] .state-firing').count() == 1
    assert await page.evaluate("window.__pwned") is None
    await page.screenshot(path=str(tmp_path / "alerts.png"), full_page=True)
