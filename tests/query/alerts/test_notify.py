"""Notifications: Slack Block Kit messages that slack_sdk parses and that ping nobody, the
webhook's Alertmanager v4 body and HMAC signature, retries with Retry-After, and a channel that
hangs or fails delaying no other channel and no ingest."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac

import orjson
import pytest
from flightlog.query import slack_blocks
from flightlog.query.alerts.notify.alert import Alert
from flightlog.query.alerts.notify.dispatcher import Delivery, Dispatcher
from flightlog.query.alerts.notify.slack import SlackSender, message
from flightlog.query.alerts.notify.webhook import SIGNATURE_HEADER, WebhookSender
from flightlog.web.server import create_app
from slack_sdk.models.blocks import Block


def parse_slack(body: dict) -> list[Block]:
    """Every block through slack_sdk's own model and its limit checks."""
    blocks = [Block.parse(b) for b in body["blocks"]]
    for block in blocks:
        assert block is not None
        block.validate_json()
    assert len(blocks) <= 50 and body["text"]
    return blocks


HOSTILE = "<!channel> <@U123> <https://evil.example|click> & <!here> " + "x" * 5000


def _alert(**changes) -> Alert:
    base = Alert(
        tenant="default", rule="checkout errors", status="firing",
        labels={"alertname": "checkout errors", "host": "<!channel>", "tenant": "default"},
        group_labels={"host": "<!channel>"}, annotations={"summary": "errors <@U1>", "runbook": HOSTILE},
        value=23.0, starts_at_ms=1_700_000_000_000, ends_at_ms=0,
        generator_url="https://flightlog.example/search?q=level%3Aerror", fingerprint="abc",
        links={"lines": "https://flightlog.example/search?q=level%3Aerror"},
        sample_lines=[{"ts": "2026-12-02T12:00:00.000000000Z", "level": "error", "service": "checkout",
                       "host": "web-1", "message": HOSTILE} for _ in range(7)],
        condition="count > 20",
    )
    return dataclasses.replace(base, **changes)


def _unescaped_specials(body: dict) -> list[str]:
    """Every `<…>` control sequence Slack would act on, anywhere in the message's mrkdwn."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                text = node["text"]
                if "<" in text or ">" in text:
                    found.append(text)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(body["blocks"])
    if "<" in body["text"]:
        found.append(body["text"])
    return found


def test_a_slack_message_parses_with_slack_sdk_and_escapes_everything_from_logs():
    body = message(_alert())
    blocks = parse_slack(body)
    assert _unescaped_specials(body) == []
    text = orjson.dumps(body).decode()
    assert "&lt;!channel&gt;" in text and "&lt;@U123&gt;" in text and "&amp;" in text
    assert [b.type for b in blocks][:2] == ["header", "section"]
    actions = [b for b in body["blocks"] if b["type"] == "actions"][0]
    assert actions["elements"][0]["url"] == "https://flightlog.example/search?q=level%3Aerror"
    code = [b for b in body["blocks"] if b["type"] == "section" and b["text"]["text"].startswith("```")]
    assert len(code) == 1 and len(code[0]["text"]["text"]) <= 3000


def test_a_resolved_slack_message_has_the_same_shape_and_no_sample_lines():
    body = message(_alert(status="resolved", ends_at_ms=1_700_000_600_000))
    parse_slack(body)
    assert body["blocks"][0]["text"]["text"].startswith("[RESOLVED] checkout errors")
    assert not any(b["type"] == "section" and b["text"]["text"].startswith("```") for b in body["blocks"])


def test_escape_never_leaves_half_an_entity_when_clipping():
    clipped = slack_blocks.clip(slack_blocks.escape("a" * 9 + "<"), 12)
    assert clipped == "a" * 9 + "…"


async def until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def _dispatcher(**kwargs) -> Dispatcher:
    d = Dispatcher(backoff_s=0.05, **kwargs)
    await d.start()
    return d


async def test_slack_429_is_retried_after_the_retry_after_it_names(receiver):
    receiver.answers["/slack"] = lambda n: (429, {"Retry-After": "1"}) if n == 0 else 200
    d = await _dispatcher(timeout_s=5)
    try:
        d.submit(Delivery(SlackSender(receiver.url + "/slack", "slack:a"), _alert(), "default", "r"))
        await receiver.wait_for(lambda r: len(r) == 2)
        first, second = receiver.on("/slack")
        assert second.at - first.at >= 0.9  # waited as told, not the 0.05 s backoff
        await until(lambda: d.outcomes[("slack", "sent")] == 1)
        assert d.outcomes[("slack", "sent")] == 1 and d.outcomes[("slack", "retried")] == 1
        parse_slack(second.json())
    finally:
        await d.stop()


async def test_a_failing_webhook_is_retried_then_shown_on_the_rule(receiver):
    receiver.answers["/hook"] = 500
    d = await _dispatcher(timeout_s=5, max_attempts=3)
    done = asyncio.Event()
    try:
        d.submit(Delivery(WebhookSender(receiver.url + "/hook", "", "webhook:a", "http://x"), _alert(), "default",
                          "checkout errors", on_done=lambda error: done.set()))
        async with asyncio.timeout(20):
            await done.wait()
        assert len(receiver.on("/hook")) == 3
        assert d.outcomes[("webhook", "failed")] == 1
        kind, error, _ = d.rule_errors[("default", "checkout errors")]
        assert kind == "webhook" and "HTTP 500" in error
    finally:
        await d.stop()


async def test_the_webhook_body_is_alertmanager_v4_and_signed_with_hmac(receiver):
    d = await _dispatcher()
    try:
        d.submit(Delivery(WebhookSender(receiver.url + "/hook", "s3cret", "webhook:b", "https://flightlog.example"),
                          _alert(), "default", "r"))
        await receiver.wait_for(lambda r: len(r) == 1)
        got = receiver.received[0]
        expected = "sha256=" + hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
        assert got.headers[SIGNATURE_HEADER] == expected
        body = got.json()
        assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "flightlog"
        assert body["groupLabels"] == {"alertname": "checkout errors", "host": "<!channel>"}
        assert body["externalURL"] == "https://flightlog.example"
        assert body["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
        assert body["alerts"][0]["fingerprint"] == "abc"
        assert body["groupKey"].endswith('{host="<!channel>"}')
    finally:
        await d.stop()


async def test_a_hanging_webhook_delays_no_other_channel(receiver):
    receiver.answers["/hang"] = "hang"
    d = await _dispatcher(timeout_s=3600)
    try:
        hanging = WebhookSender(receiver.url + "/hang", "", "webhook:hang", "http://x")
        slack = SlackSender(receiver.url + "/slack", "slack:ok")
        for i in range(3):
            d.submit(Delivery(hanging, _alert(fingerprint=f"h{i}"), "default", "r"))
        for i in range(3):
            d.submit(Delivery(slack, _alert(fingerprint=f"s{i}"), "default", "r"))
        await receiver.wait_for(lambda r: len(r) == 3, timeout=20)
        assert [r.path for r in receiver.received] == ["/slack"] * 3
        await until(lambda: d.queued() == {"webhook": 2, "slack": 0})
    finally:
        await d.stop()


async def test_a_full_queue_drops_its_oldest_item_and_counts_it(receiver):
    receiver.answers["/hang"] = "hang"
    d = await _dispatcher(queue_size=2, timeout_s=3600)
    try:
        hanging = WebhookSender(receiver.url + "/hang", "", "webhook:hang", "http://x")
        for i in range(5):
            d.submit(Delivery(hanging, _alert(fingerprint=str(i)), "default", "r"))
            await asyncio.sleep(0)
        assert d.outcomes[("webhook", "dropped")] >= 2
        assert d.queued()["webhook"] <= 2
    finally:
        await d.stop()


async def test_ingest_and_evaluation_go_on_while_a_webhook_hangs(aiohttp_client, settings, store, tmp_path, receiver):
    receiver.answers["/hang"] = "hang"
    rules = tmp_path / "rules.yml"
    rules.write_text(f"""
rules:
  - name: errors
    query: level:error
    interval: 5s
    condition: count > 0
    group_by: [host]
    channels:
      - type: webhook
        url: {receiver.url}/hang
      - type: slack
        url: {receiver.url}/slack
""")
    client = await aiohttp_client(create_app(dataclasses.replace(settings, rules=str(rules)), store=store))
    for n in range(6):
        response = await client.post("/api/v1/logs", data=orjson.dumps({"level": "error", "msg": "x", "host": f"h{n}"}))
        assert response.status == 200
        if n == 2:
            await receiver.wait_for(lambda r: len(r) >= 3)  # three hosts fired on Slack; the webhook hangs
    await receiver.wait_for(lambda r: len(r) >= 6, timeout=30)  # later groups still reach Slack
    assert {r.path for r in receiver.received} == {"/slack"}
    for r in receiver.received:
        parse_slack(r.json())
    metrics = await (await client.get("/metrics")).text()
    assert 'flightlog_alert_notifications_queued{channel="webhook"}' in metrics
    assert "flightlog_ingest_lines_accepted_total 6" in metrics


@pytest.mark.skipif(not __import__("importlib").util.find_spec("apprise"), reason="apprise is not installed")
async def test_an_apprise_url_delivers_through_apprise(receiver):
    from flightlog.query.alerts.notify.apprise_channel import AppriseSender

    d = await _dispatcher(timeout_s=20)
    try:
        port = receiver.url.rsplit(":", 1)[1]
        error = await d.send_now(AppriseSender(f"json://127.0.0.1:{port}/apprise", "apprise:a"), _alert())
        assert error is None
        body = receiver.on("/apprise")[0].json()
        assert body["title"].startswith("[FIRING] checkout errors") and "count > 20" in body["message"]
    finally:
        await d.stop()
