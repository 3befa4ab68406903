"""Buttons, link unfurls and Slack's limits: presses answered through response_url, unfurls
sent to a local fake Slack API through slack_sdk, and answers that stay within 50 blocks and
3,000 characters a text, saying when they were cut."""

from __future__ import annotations

import asyncio
import time

import orjson
from flightlog.query import slack_blocks as sb
from flightlog.query.alerts import silences
from flightlog.query.alerts.api import ALERTS
from flightlog.query.chatops import answers
from flightlog.schema.chatops_workspaces import new_workspace

from tests.query.chatops.conftest import (
    BOT_TOKEN_A,
    PUBLIC,
    SECRET_A,
    SECRET_B,
    interaction_body,
    parse_blocks,
    post_command,
    signed,
    texts,
    write_lines,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def press(client, action_id: str, value: dict, *, secret: str = SECRET_A, headers=None, **kwargs):
    body = interaction_body(action_id, orjson.dumps(value).decode(), **kwargs)
    return await client.post("/chatops/slack/interactions", data=body,
                             headers={**FORM, **(headers if headers is not None else signed(body, secret))})


async def test_next_20_lines_pages_through_the_trail_in_order_through_response_url(chat, store, slack):
    made = write_lines(store, "acme", [{"host": f"h{i % 3}", "message": f"line {i:02d}", "build_id": "big"}
                                       for i in range(45)])
    write_lines(store, "beta", [{"message": "SECRET-B", "build_id": "big"}])
    hook = f"{slack.url}/actions/T0/1/x"
    response = await press(chat, answers.NEXT_LINES, {"k": "build", "id": "big", "c": None}, response_url=hook)
    assert response.status == 200
    await slack.wait_for(lambda: len(slack.on("/actions/T0/1/x")) == 1)
    first = slack.on("/actions/T0/1/x")[0].json()
    parse_blocks(first)
    shown = texts(first)
    assert [f"line {i:02d}" in shown for i in range(21)] == [True] * 20 + [False]
    assert "SECRET-B" not in shown
    [button] = [e for b in first["blocks"] if b["type"] == "actions" for e in b["elements"]
                if e.get("action_id") == answers.NEXT_LINES]
    await press(chat, answers.NEXT_LINES, orjson.loads(button["value"]), response_url=hook)
    await slack.wait_for(lambda: len(slack.on("/actions/T0/1/x")) == 2)
    second = texts(slack.on("/actions/T0/1/x")[1].json())
    assert "line 19" not in second and "line 20" in second and "line 39" in second and "line 40" not in second
    assert len(made) == 45


async def test_show_first_error_answers_with_the_line_escaped(chat, store, slack):
    write_lines(store, "acme", [{"message": "fine", "build_id": "b7"},
                                {"level": "fatal", "message": "<!channel> boom", "build_id": "b7", "host": "h9"}])
    hook = f"{slack.url}/actions/T0/2/y"
    await press(chat, answers.FIRST_ERROR, {"k": "build", "id": "b7"}, response_url=hook)
    await slack.wait_for(lambda: bool(slack.on("/actions/T0/2/y")))
    body = slack.on("/actions/T0/2/y")[0].json()
    parse_blocks(body)
    assert "&lt;!channel&gt; boom" in texts(body) and "<!channel>" not in orjson.dumps(body).decode()
    assert "`h9`" in texts(body)


async def test_a_forged_or_replayed_press_is_refused_and_nothing_is_posted(chat, store, slack):
    write_lines(store, "acme", [{"message": "x", "build_id": "b1"}])
    hook = f"{slack.url}/actions/T0/3/z"
    forged = await press(chat, answers.NEXT_LINES, {"k": "build", "id": "b1"}, secret=SECRET_B, response_url=hook)
    assert forged.status == 401
    body = interaction_body(answers.NEXT_LINES, '{"k":"build","id":"b1"}', response_url=hook)
    headers = {**FORM, **signed(body, SECRET_A)}
    assert (await chat.post("/chatops/slack/interactions", data=body, headers=headers)).status == 200
    assert (await chat.post("/chatops/slack/interactions", data=body, headers=headers)).status == 401
    await slack.wait_for(lambda: bool(slack.on("/actions/T0/3/z")))
    await asyncio.sleep(0.3)
    assert len(slack.on("/actions/T0/3/z")) == 1


async def test_alerts_lists_what_fires_and_only_an_allowed_user_may_silence_it_for_an_hour(chat, store, slack,
                                                                                      workspaces):
    workspaces.put(new_workspace("TD", "default", signing_secret=SECRET_A, silencers=["U0BOSS"]))
    rule = {"name": "checkout errors", "query": "level:>=error service:checkout", "window": "5m",
            "condition": "count > 2", "group_by": ["host"]}
    assert (await chat.post("/api/v1/alerts/rules", json=rule)).status == 201
    write_lines(store, "default", [{"service": "checkout", "host": "web-1", "level": "error",
                                    "message": "<!here> card declined"}] * 4)
    service = chat.server.app[ALERTS]
    service.registry.reload()
    [stored] = [s for s in service.registry.all() if s.rule.name == "checkout errors"]
    await service.evaluator.evaluate_rule(stored)
    assert any(g.state == "firing" for g in service.evaluator.states[stored.key].values())

    listed = await (await post_command(chat, "alerts", team="TD")).json()
    parse_blocks(listed)
    assert "1 alerts firing" in texts(listed) and "checkout errors" in texts(listed) and "host=web-1" in texts(listed)
    elements = [e for b in listed["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert f"{PUBLIC}/alerts/rules/checkout%20errors" in [e.get("url") for e in elements]
    [silence] = [e for e in elements if e.get("action_id") == answers.SILENCE]
    other = await (await post_command(chat, "alerts")).json()  # workspace TA: tenant acme
    assert "Nothing is firing" in texts(other)

    hook = f"{slack.url}/actions/T0/4/s"
    await press(chat, answers.SILENCE, orjson.loads(silence["value"]), team="TD", user="U0RANDOM", response_url=hook)
    await slack.wait_for(lambda: len(slack.on("/actions/T0/4/s")) == 1)
    refused = slack.on("/actions/T0/4/s")[0].json()
    assert refused["response_type"] == "ephemeral" and "may not silence" in texts(refused)
    assert silences.active(store, "default") == []

    await press(chat, answers.SILENCE, orjson.loads(silence["value"]), team="TD", user="U0BOSS", response_url=hook)
    await slack.wait_for(lambda: len(slack.on("/actions/T0/4/s")) == 2)
    done = slack.on("/actions/T0/4/s")[1].json()
    parse_blocks(done)
    assert "is silenced until" in texts(done)
    [made] = silences.active(store, "default")
    assert made.rule == "checkout errors" and made.matchers == {"host": "web-1"}
    assert 3590_000 < made.until_ms - int(time.time() * 1000) <= 3600_000
    assert silences.active(store, "acme") == []


async def test_url_verification_answers_the_challenge_only_when_signed(chat):
    body = orjson.dumps({"type": "url_verification", "token": "legacy", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    ok = await chat.post("/chatops/slack/events", data=body, headers={"Content-Type": "application/json",
                                                                      **signed(body, SECRET_A)})
    assert ok.status == 200 and (await ok.json())["challenge"].startswith("3eZbrw1aBm2r")
    bad = await chat.post("/chatops/slack/events", data=body, headers={"Content-Type": "application/json",
                                                                       **signed(body, "guessed")})
    assert bad.status == 401


def link_shared(team: str, urls: list[str], event_id: str = "Ev1") -> bytes:
    return orjson.dumps({
        "token": "legacy", "team_id": team, "api_app_id": "A0APP", "type": "event_callback", "event_id": event_id,
        "event_time": int(time.time()),
        "event": {"type": "link_shared", "channel": "CA", "user": "U0ASK", "message_ts": "1700000000.000100",
                  "links": [{"domain": "flightlog.test", "url": u} for u in urls]},
    })


async def test_a_shared_build_link_is_unfurled_through_slack_sdk_at_the_fake_slack_api(chat, store, slack):
    write_lines(store, "acme", [{"host": "acme-1", "level": "error", "message": "<!channel> acme broke",
                                 "build_id": "1234"}])
    write_lines(store, "beta", [{"host": "beta-host", "message": "SECRET-B", "build_id": "1234"}])
    body = link_shared("TA", [f"{PUBLIC}/builds/1234", "https://elsewhere.example/builds/1234",
                              f"{PUBLIC}/search?q=level%3Aerror&from=2h"])
    response = await chat.post("/chatops/slack/events", data=body, headers={"Content-Type": "application/json",
                                                                           **signed(body, SECRET_A)})
    assert response.status == 200
    await slack.wait_for(lambda: bool(slack.on("/api/chat.unfurl")))
    [call] = slack.on("/api/chat.unfurl")
    assert call.headers["Authorization"] == f"Bearer {BOT_TOKEN_A}"
    sent = call.json()
    assert (sent["channel"], sent["ts"]) == ("CA", "1700000000.000100")
    assert set(sent["unfurls"]) == {f"{PUBLIC}/builds/1234", f"{PUBLIC}/search?q=level%3Aerror&from=2h"}
    for unfurl in sent["unfurls"].values():
        parse_blocks(unfurl)
    build = orjson.dumps(sent["unfurls"][f"{PUBLIC}/builds/1234"]).decode()
    assert "Build 1234" in build and "acme broke" in build
    assert "SECRET-B" not in orjson.dumps(sent).decode() and "<!channel>" not in build
    assert "*1* lines match" in texts(sent["unfurls"][f"{PUBLIC}/search?q=level%3Aerror&from=2h"])

    # Slack retries an event it thinks was missed: it is not unfurled twice
    again = link_shared("TA", [f"{PUBLIC}/builds/1234"])
    await chat.post("/chatops/slack/events", data=again, headers={"Content-Type": "application/json",
                                                                 "X-Slack-Retry-Num": "1", **signed(again, SECRET_A)})
    await asyncio.sleep(0.3)
    assert len(slack.on("/api/chat.unfurl")) == 1


async def test_an_unsigned_link_shared_event_unfurls_nothing(chat, store, slack):
    write_lines(store, "acme", [{"message": "x", "build_id": "1234"}])
    body = link_shared("TA", [f"{PUBLIC}/builds/1234"], "Ev2")
    response = await chat.post("/chatops/slack/events", data=body, headers={"Content-Type": "application/json",
                                                                           **signed(body, SECRET_B)})
    assert response.status == 401
    await asyncio.sleep(0.3)
    assert slack.on("/api/chat.unfurl") == []


def test_answers_stay_within_50_blocks_and_3000_characters_and_say_when_they_were_cut():
    firing = [{"rule": f"rule {i}", "labels": {"host": f"h{i}"}, "value": 3.0, "since": "2026-12-02T10:00:00Z"}
              for i in range(40)]
    message = answers.alerts_answer("acme", firing, PUBLIC).message
    assert len(message["blocks"]) == 50
    parse_blocks(message)
    assert "cut:" in texts({"blocks": message["blocks"][-1:]})

    long_lines = [f"{i} " + "x" * 900 for i in range(10)]
    block = sb.code_lines(long_lines)
    assert len(block["text"]["text"]) <= 3000 and "cut: 3 of 10 lines shown" in block["text"]["text"]
    huge = sb.code_lines(["<" * 5000])
    assert len(huge["text"]["text"]) <= 3000 and huge["text"]["text"].endswith("…```")
    assert not huge["text"]["text"].endswith("&…```")  # an entity is never cut in half

    rows = sb.fit_rows([f"• `{'h' * 300}-{i}`" for i in range(20)], 300, "hosts", 2900)
    assert sum(len(r) + 1 for r in rows) <= 2900 and rows[-1].startswith("… cut:") and "more hosts" in rows[-1]


async def test_a_build_on_many_long_named_hosts_fits_slack_and_says_how_many_hosts_were_cut(chat, store):
    write_lines(store, "acme", [{"host": f"{'node' * 40}-{i:03d}", "service": "api", "message": f"m{i}",
                                 "build_id": "wide"} for i in range(60)])
    body = await (await post_command(chat, "build wide")).json()
    parse_blocks(body)
    [hosts] = [b for b in body["blocks"] if b["type"] == "section" and b["text"]["text"].startswith("*Hosts*")]
    assert len(hosts["text"]["text"]) <= 3000
    assert "*Hosts* (60)" in hosts["text"]["text"] and "more hosts not shown" in hosts["text"]["text"]
