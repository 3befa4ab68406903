"""The alerts pages without a browser: list, form, preview, save, the rule page with its SVG
graph, silence and delete; every value from logs escaped; managing needs the alerts scope."""

from __future__ import annotations

import asyncio

from flightlog.schema.api_keys import KeyFile, new_key

from tests.query.alerts.conftest import lines

XSS = '<script>alert(1)</script>'
FORM = {"name": "web errors", "kind": "search", "query": "level:error", "window": "5m", "condition": "count > 1",
        "group_by": "host", "for": "0s", "interval": "5s", "repeat_interval": "4h", "labels": "team=web",
        "annotations": "summary={{ value }} errors on {{ labels.host }}"}


async def test_the_alerts_page_says_how_to_start_when_there_are_no_rules(client):
    response = await client.get("/alerts", headers={"Accept": "text/html"})
    assert response.status == 200
    html = await response.text()
    assert "No alert rules yet" in html and "--rules rules.yml" in html and 'href="/alerts/new"' in html


async def test_preview_save_and_the_rule_page_escape_every_value_from_logs(client, store):
    lines(store, 3, host=XSS, level="error", message=f"failed {XSS}")
    preview = await client.post("/alerts/preview", data=FORM)
    html = await preview.text()
    assert preview.status == 200, html
    assert "1 of 1 group would fire now" in html
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html

    saved = await client.post("/alerts/rules", data=FORM, allow_redirects=False)
    assert saved.status == 303 and saved.headers["Location"] == "/alerts/rules/web%20errors"
    for _ in range(100):  # the evaluator runs the new rule on its next tick
        page = await (await client.get("/alerts/rules/web%20errors")).text()
        if "<polyline" in page and "state-firing" in page:
            break
        await asyncio.sleep(0.1)
    assert "<polyline" in page and 'class="threshold"' in page
    assert XSS not in page
    listing = await (await client.get("/alerts")).text()
    assert 'data-rule="web errors"' in listing and "state-firing" in listing


async def test_a_bad_form_shows_each_field_and_reason_and_keeps_what_was_typed(client):
    response = await client.post("/alerts/rules", data={**FORM, "window": "soon", "condition": "lots"})
    html = await response.text()
    assert response.status == 400
    assert "<code>window</code>" in html and "<code>condition</code>" in html
    assert 'value="soon"' in html


async def test_silencing_a_group_and_deleting_the_rule_from_the_page(client, store):
    await client.post("/alerts/rules", data=FORM, allow_redirects=False)
    silenced = await client.post("/alerts/rules/web%20errors/silence", data={"match": "host=web-1", "for": "1h"})
    assert silenced.status == 200 and "Silenced for 1h" in await silenced.text()
    listing = await (await client.get("/alerts")).text()
    assert "<code>host=web-1</code>" in listing
    deleted = await client.post("/alerts/rules/web%20errors/delete", allow_redirects=False)
    assert deleted.status == 303
    assert (await client.get("/alerts/rules/web%20errors")).status == 404


async def test_a_read_key_sees_the_rules_but_cannot_save_or_silence(client, settings):
    record, text = new_key("default", "read")
    KeyFile(settings.data_dir).add(record)
    headers = {"Authorization": f"Bearer {text}"}
    assert (await client.get("/alerts", headers=headers)).status == 200
    assert (await client.post("/alerts/rules", data=FORM, headers=headers)).status == 403
    assert (await client.post("/alerts/preview", data=FORM, headers=headers)).status == 200
