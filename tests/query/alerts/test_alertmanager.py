"""Hand-off to the real Alertmanager (Debian's binary): a rule fires, a receiver behind
Alertmanager gets it, the lines stop, the receiver gets the resolve; a restart of flightlog while
firing sends no duplicate and still resolves."""

from __future__ import annotations

import dataclasses

import orjson
from flightlog.web.server import create_app

from tests.query.alerts.alertmanager import alertmanager

RULES = """
rules:
  - name: checkout errors
    query: level:error service:checkout
    window: 8s
    interval: 5s
    condition: count > 2
    group_by: [host]
    labels:
      severity: page
    annotations:
      summary: "{{ value }} errors on {{ labels.host }}"
    channels:
      - type: webhook
        url: RECEIVER/direct
"""


async def _app(aiohttp_client, settings, store, tmp_path, receiver, am_url):
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES.replace("RECEIVER", receiver.url))
    app_settings = dataclasses.replace(settings, rules=str(rules), alertmanager_url=am_url,
                                       public_url="https://flightlog.example")
    return await aiohttp_client(create_app(app_settings, store=store))


async def _send_errors(client, host: str, n: int) -> None:
    body = b"\n".join(orjson.dumps({"level": "error", "msg": f"payment failed {i}", "service": "checkout",
                                    "host": host}) for i in range(n))
    response = await client.post("/api/v1/logs", data=body)
    assert response.status == 200, await response.text()


def _statuses(received, path):
    return [(r.json()["status"], [a["labels"]["host"] for a in r.json()["alerts"]]) for r in received if r.path == path]


async def test_a_rule_fires_through_alertmanager_and_resolves_when_the_lines_stop(
    aiohttp_client, settings, store, tmp_path, receiver
):
    async with alertmanager(tmp_path, receiver.url + "/am") as am_url:
        client = await _app(aiohttp_client, settings, store, tmp_path, receiver, am_url)
        await _send_errors(client, "web-1", 5)
        await _send_errors(client, "web-2", 1)  # under the threshold: never fires
        await receiver.wait_for(lambda r: any(x.path == "/am" for x in r), timeout=30)
        firing = receiver.on("/am")[0].json()
        assert firing["status"] == "firing" and firing["version"] == "4"
        alert = firing["alerts"][0]
        assert alert["labels"] == {"alertname": "checkout errors", "host": "web-1", "severity": "page",
                                   "tenant": "default"}
        assert alert["annotations"]["summary"] == "5 errors on web-1"
        assert alert["generatorURL"].startswith("https://flightlog.example/search?q=")
        assert "host%3A%22web-1%22" in alert["generatorURL"]
        # no more lines: after the 8 s window the rule resolves, and Alertmanager says so
        await receiver.wait_for(lambda r: any(x.path == "/am" and x.json()["status"] == "resolved" for x in r),
                                timeout=40)
        assert _statuses(receiver.received, "/am") == [("firing", ["web-1"]), ("resolved", ["web-1"])]
        assert [s for s, _ in _statuses(receiver.received, "/direct")] == ["firing", "resolved"]


async def test_a_restart_while_firing_sends_no_duplicate_and_the_resolve_still_arrives(
    aiohttp_client, settings, store, tmp_path, receiver
):
    async with alertmanager(tmp_path, receiver.url + "/am") as am_url:
        client = await _app(aiohttp_client, settings, store, tmp_path, receiver, am_url)
        await _send_errors(client, "web-1", 5)
        await receiver.wait_for(lambda r: len([x for x in r if x.path in ("/am", "/direct")]) >= 2, timeout=30)
        await client.close()  # flightlog stops while the alert fires

        # lines keep coming while it is down, so the alert is still firing when it comes back
        client = await _app(aiohttp_client, settings, store, tmp_path, receiver, am_url)
        await _send_errors(client, "web-1", 5)
        await receiver.wait_for(lambda r: any(x.path == "/am" and x.json()["status"] == "resolved" for x in r),
                                timeout=60)
        await receiver.wait_for(lambda r: any(x.path == "/direct" and x.json()["status"] == "resolved" for x in r),
                                timeout=10)
        assert _statuses(receiver.received, "/am") == [("firing", ["web-1"]), ("resolved", ["web-1"])]
        assert [s for s, _ in _statuses(receiver.received, "/direct")] == ["firing", "resolved"]
