"""The alerts API over real HTTP: CRUD, 400 with the field path, write-only channel secrets,
file rules read-only, preview, test notifications, silences, scopes and tenants."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from flightlog.query.alerts.api import ALERTS
from flightlog.schema.api_keys import KeyFile, new_key
from flightlog.web.server import create_app

from tests.query.alerts.conftest import lines

RULE = {"name": "checkout errors", "query": "level:>=error service:checkout", "window": "5m",
        "condition": "count > 2", "group_by": ["host"]}


@pytest.fixture
async def client(aiohttp_client, settings, store):
    return await aiohttp_client(create_app(settings, roles={"query"}, store=store))


async def test_a_rule_is_created_listed_replaced_and_deleted(client):
    response = await client.post("/api/v1/alerts/rules", json=RULE)
    assert response.status == 201, await response.text()
    assert (await response.json())["source"] == "api"
    listed = (await (await client.get("/api/v1/alerts/rules")).json())["rules"]
    assert [r["name"] for r in listed] == ["checkout errors"]
    again = await client.post("/api/v1/alerts/rules", json=RULE)
    assert again.status == 409
    replaced = await client.put("/api/v1/alerts/rules/checkout errors", json={**RULE, "condition": "count > 9"})
    assert replaced.status == 200 and (await replaced.json())["condition"] == "count > 9"
    one = await (await client.get("/api/v1/alerts/rules/checkout errors")).json()
    assert one["condition"] == "count > 9" and one["groups"] == [] and "history" in one
    assert (await client.delete("/api/v1/alerts/rules/checkout errors")).status == 200
    assert (await client.get("/api/v1/alerts/rules/checkout errors")).status == 404
    assert (await client.delete("/api/v1/alerts/rules/checkout errors")).status == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**RULE, "window": "five minutes"}, "window"),
        ({**RULE, "channels": [{"type": "slack", "url": "ftp://x"}]}, "channels.0"),
        ({**RULE, "labels": {"ok": 5}}, "labels.ok"),
        ({"query": "level:error"}, "name"),
        ([1, 2], "(rule)"),
    ],
)
async def test_a_bad_rule_is_a_400_naming_the_field_path(client, body, field):
    response = await client.post("/api/v1/alerts/rules", json=body)
    assert response.status == 400
    answer = await response.json()
    assert field in [e["field"] for e in answer["errors"]], answer
    assert field in answer["error"]


async def test_a_body_that_is_not_json_is_a_400(client):
    response = await client.post("/api/v1/alerts/rules", data=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status == 400


async def test_channel_urls_and_secrets_are_never_shown_back_and_survive_an_edit_by_id(client):
    secret_url = "https://hooks.slack.example/services/T0/B0/TOKEN123"
    body = {**RULE, "channels": [{"type": "slack", "url": secret_url},
                                 {"type": "webhook", "url": "https://hook.example/x", "secret": "s3cret"}]}
    created = await client.post("/api/v1/alerts/rules", json=body)
    text = await created.text()
    assert "TOKEN123" not in text and "s3cret" not in text
    channels = (await created.json())["channels"]
    for path in ("/api/v1/alerts/rules", "/api/v1/alerts/rules/checkout errors"):
        shown = await (await client.get(path)).text()
        assert "TOKEN123" not in shown and "s3cret" not in shown
    # an edit that keeps the channels by id, without knowing their URLs
    kept = await client.put("/api/v1/alerts/rules/checkout errors",
                            json={**RULE, "window": "10m", "channels": [{"id": c["id"]} for c in channels]})
    assert kept.status == 200, await kept.text()
    assert (await kept.json())["channels"] == channels
    unknown = await client.put("/api/v1/alerts/rules/checkout errors", json={**RULE, "channels": [{"id": "nope"}]})
    assert unknown.status == 400 and (await unknown.json())["errors"][0]["field"] == "channels.0.id"


async def test_preview_shows_the_groups_that_would_fire_now_with_sample_lines(client, store):
    lines(store, 4, service="checkout", host="web-1", level="error", message="card <declined>")
    lines(store, 1, service="checkout", host="web-2", level="error")
    response = await client.post("/api/v1/alerts/preview", json={k: v for k, v in RULE.items() if k != "name"})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["would_fire"] == 1
    first, second = body["groups"]
    assert (first["labels"], first["value"], first["would_fire"]) == ({"host": "web-1"}, 4, True)
    assert len(first["lines"]) == 4 and first["lines"][0]["message"] == "card <declined>"
    assert (second["labels"], second["would_fire"], second["lines"]) == ({"host": "web-2"}, False, [])
    assert (await client.get("/api/v1/alerts/rules")).status == 200
    assert (await (await client.get("/api/v1/alerts/rules")).json())["rules"] == []  # nothing saved


async def test_preview_of_a_refused_sql_rule_says_why(client):
    response = await client.post("/api/v1/alerts/preview", json={
        "kind": "sql", "condition": "value > 0", "query": "SELECT count() AS value FROM system.users"})
    assert response.status == 400
    assert (await response.json())["errors"][0]["field"] == "query"


async def test_the_test_button_sends_to_every_channel_and_reports_each(client, receiver):
    receiver.answers["/broken"] = 500
    await client.post("/api/v1/alerts/rules", json={**RULE, "channels": [
        {"type": "slack", "url": receiver.url + "/slack"}, {"type": "webhook", "url": receiver.url + "/broken"}]})
    response = await client.post("/api/v1/alerts/rules/checkout errors/test")
    results = (await response.json())["results"]
    assert [(r["channel"]["type"], r["ok"]) for r in results] == [("slack", True), ("webhook", False)]
    assert "HTTP 500" in results[1]["error"]
    assert receiver.on("/slack")[0].json()["blocks"][0]["text"]["text"].startswith("[TEST] checkout errors")


async def test_a_silence_is_created_listed_and_expired(client):
    bad = await client.post("/api/v1/alerts/silences", json={"for": "1h"})
    assert bad.status == 400 and "matchers" in (await bad.json())["error"]
    made = await client.post("/api/v1/alerts/silences", json={"rule": "checkout errors", "matchers": {"host": "web-1"},
                                                               "for": "2h", "comment": "deploying"})
    assert made.status == 201
    silence = await made.json()
    listed = (await (await client.get("/api/v1/alerts/silences")).json())["silences"]
    assert [s["id"] for s in listed] == [silence["id"]]
    assert (await client.delete(f"/api/v1/alerts/silences/{silence['id']}")).status == 200
    assert (await (await client.get("/api/v1/alerts/silences")).json())["silences"] == []


async def test_file_rules_are_listed_read_only_and_cannot_be_replaced(aiohttp_client, settings, store, tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text("rules:\n  - name: from file\n    query: level:error\n")
    client = await aiohttp_client(create_app(dataclasses.replace(settings, rules=str(path)), roles={"query"},
                                             store=store))
    listed = (await (await client.get("/api/v1/alerts/rules")).json())["rules"]
    assert [(r["name"], r["source"], r["read_only"]) for r in listed] == [("from file", "file", True)]
    for response in (await client.put("/api/v1/alerts/rules/from file", json={"name": "from file"}),
                     await client.delete("/api/v1/alerts/rules/from file"),
                     await client.post("/api/v1/alerts/rules", json={"name": "from file"})):
        assert response.status == 409


def test_a_bad_rules_file_stops_the_start_naming_the_field(settings, store, tmp_path):
    from flightlog.query.alerts.rules import RuleError

    path = tmp_path / "rules.yml"
    path.write_text("rules:\n  - name: a\n    window: 5 minutes\n")
    with pytest.raises(RuleError, match=r"rules\.0\.window"):
        create_app(dataclasses.replace(settings, rules=str(path)), roles={"query"}, store=store)


@pytest.fixture
def key(settings):
    def make(tenant: str, scope: str) -> dict[str, str]:
        record, text = new_key(tenant, scope)
        KeyFile(settings.data_dir).add(record)
        return {"Authorization": f"Bearer {text}"}

    return make


async def test_managing_rules_needs_an_alerts_or_admin_key_and_stays_in_the_tenant(client, key):
    read_a, alerts_a, admin, alerts_b = key("a", "read"), key("a", "alerts"), key("a", "admin"), key("b", "alerts")
    refused = await client.post("/api/v1/alerts/rules", json=RULE, headers=read_a)
    assert refused.status == 403 and "alerts" in (await refused.json())["error"]
    assert (await client.post("/api/v1/alerts/silences", json={"rule": "x", "for": "1h"}, headers=read_a)).status == 403
    assert (await client.post("/api/v1/alerts/rules", json=RULE, headers=alerts_a)).status == 201
    assert (await client.get("/api/v1/alerts/rules", headers=read_a)).status == 200  # reading needs read
    assert (await client.put("/api/v1/alerts/rules/checkout errors", json=RULE, headers=admin)).status == 200
    # tenant b sees none of tenant a's rules, and cannot touch them
    assert (await (await client.get("/api/v1/alerts/rules", headers=alerts_b)).json())["rules"] == []
    assert (await client.delete("/api/v1/alerts/rules/checkout errors", headers=alerts_b)).status == 404
    assert (await client.post("/api/v1/alerts/rules", json=RULE, headers=alerts_b)).status == 201
    assert (await client.delete("/api/v1/alerts/rules/checkout errors", headers=alerts_a)).status == 200
    assert [r["name"] for r in (await (await client.get("/api/v1/alerts/rules", headers=alerts_b)).json())["rules"]] \
        == ["checkout errors"]


async def test_a_standby_node_shows_the_evaluating_nodes_status_and_groups(aiohttp_client, settings, store, tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text("rules:\n  - name: errors\n    query: level:error\n    interval: 5s\n    condition: count > 1\n"
                    "    group_by: [host]\n")
    lines(store, 3, host="web-1", level="error")
    leader = await aiohttp_client(create_app(dataclasses.replace(settings, rules=str(path)), roles={"query"},
                                             store=store))
    standby = await aiohttp_client(create_app(dataclasses.replace(settings, rules=str(path)), roles={"query"},
                                              store=store))
    for _ in range(200):
        alerts = (await (await standby.get("/api/v1/alerts")).json())["alerts"]
        rules = (await (await standby.get("/api/v1/alerts/rules")).json())["rules"]
        if alerts and rules[0]["status"]["evaluations"]:
            break
        await asyncio.sleep(0.1)
    assert [(a["rule"], a["labels"], a["state"]) for a in alerts] == [("errors", {"host": "web-1"}, "firing")]
    assert rules[0]["firing"] == 1 and rules[0]["status"]["last_evaluation"]
    leaders = [c.app[ALERTS].evaluator.is_leader for c in (leader, standby)]
    assert sorted(leaders) == [False, True]


async def test_a_tenants_read_key_scrapes_only_its_own_rule_values(client, key, store):
    lines(store, 2, tenant="a", host="host-of-a", level="error")
    lines(store, 2, tenant="b", host="host-of-b", level="error")
    rule = {"name": "errors", "query": "level:error", "condition": "count > 0", "group_by": ["host"], "interval": "5s"}
    for tenant in ("a", "b"):
        assert (await client.post("/api/v1/alerts/rules", json=rule, headers=key(tenant, "alerts"))).status == 201
    admin = key("a", "admin")
    for _ in range(100):
        text = await (await client.get("/metrics", headers=admin)).text()
        if "host-of-a" in text and "host-of-b" in text:
            break
        await asyncio.sleep(0.1)
    assert 'flightlog_rule_value{tenant="b",rule="errors",host="host-of-b"} 2.0' in text
    own = await (await client.get("/metrics", headers=key("a", "read"))).text()
    assert 'flightlog_rule_value{tenant="a",rule="errors",host="host-of-a"} 2.0' in own
    assert "host-of-b" not in own and 'tenant="b"' not in own
