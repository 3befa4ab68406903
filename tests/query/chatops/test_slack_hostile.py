"""What hurts in production: many askers at once from two tenants sharing a build id, bodies
too large or malformed, buttons whose values were tampered with, and the replay memory's bound."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import orjson
from flightlog.query.chatops import answers
from flightlog.query.chatops.verify import MAX_SKEW_S, NotVerified, ReplayGuard, verify_slack
from flightlog.schema.chatops_workspaces import new_workspace

from tests.query.chatops.conftest import (
    SECRET_A,
    SECRET_B,
    interaction_body,
    post_command,
    signed,
    texts,
    write_lines,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_forty_concurrent_askers_from_two_workspaces_each_see_only_their_tenant(chat, store):
    write_lines(store, "acme", [{"host": f"acme-{i}", "message": f"acme line {i}", "build_id": "shared"}
                                for i in range(30)])
    write_lines(store, "beta", [{"host": f"beta-{i}", "message": f"beta line {i}", "build_id": "shared",
                                 "level": "error"} for i in range(30)])

    async def ask(i: int):
        if i % 2:
            response = await post_command(chat, f"build shared{' -q' if i % 4 == 1 else ''}", team="TB",
                                          secret=SECRET_B, channel="CB")
            return "beta", await response.json()
        response = await post_command(chat, "build shared")
        return "acme", await response.json()

    results = await asyncio.gather(*(ask(i) for i in range(40)))
    for tenant, body in results:
        raw = orjson.dumps(body).decode()
        other = "beta" if tenant == "acme" else "acme"
        assert f"{tenant}-" in raw and f"{other}-" not in raw and f"{other} line" not in raw
        assert f"tenant {tenant}" in texts(body)
    assert {b["response_type"] for t, b in results if t == "beta"} == {"in_channel", "ephemeral"}


async def test_a_body_over_a_megabyte_is_refused_before_anything_is_read_into_an_answer(chat):
    body = b"team_id=TA&text=" + b"x" * (1024 * 1024 + 1)
    response = await chat.post("/chatops/slack/commands", data=body, headers={**FORM, **signed(body, SECRET_A)})
    assert response.status == 413


async def test_malformed_payloads_get_400_and_a_long_command_a_usage_answer(chat):
    for path, body in (("/chatops/slack/interactions", b"payload=not-json"),
                       ("/chatops/slack/interactions", b"payload=%5B1%2C2%5D"),
                       ("/chatops/slack/events", b"{not json")):
        response = await chat.post(path, data=body, headers={**FORM, **signed(body, SECRET_A)})
        assert response.status == 400, path
    long = await (await post_command(chat, "search " + "a" * 5000)).json()
    assert long["response_type"] == "ephemeral" and "1000 characters at most" in texts(long)


async def test_a_body_that_is_not_utf8_is_refused_as_unsigned_not_an_error(chat, monkeypatch):
    body = b"team_id=TA&text=build+1&x=\xff\xfe"
    stamp = str(int(time.time()))
    mac = hmac.new(SECRET_A.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    response = await chat.post("/chatops/slack/commands", data=body, headers={
        **FORM, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={mac}"})
    assert response.status == 401 and (await response.json())["reason"] == "forged"


async def test_a_tampered_button_value_cannot_reach_another_kind_or_tenant(chat, store, slack):
    write_lines(store, "beta", [{"message": "SECRET-B", "build_id": "b1"}])
    hook = f"{slack.url}/actions/T0/9/t"
    for value in ('{"k":"logs","id":"b1"}', '{"k":"build","id":"b1","c":"not-a-cursor"}', "[]", "nonsense",
                  '{"k":"build","id":"b1","tenant":"beta"}'):
        body = interaction_body(answers.NEXT_LINES, value, response_url=hook)
        assert (await chat.post("/chatops/slack/interactions", data=body,
                                headers={**FORM, **signed(body, SECRET_A)})).status == 200
    await slack.wait_for(lambda: len(slack.on("/actions/T0/9/t")) == 5)
    for seen in slack.on("/actions/T0/9/t"):
        body = seen.json()
        assert body["response_type"] == "ephemeral" and "SECRET-B" not in orjson.dumps(body).decode()


async def test_a_button_press_from_a_channel_outside_the_workspaces_channels_is_refused(chat, store, slack):
    write_lines(store, "beta", [{"message": "beta stuff", "build_id": "b1"}])
    hook = f"{slack.url}/actions/T0/8/c"
    body = interaction_body(answers.NEXT_LINES, '{"k":"build","id":"b1"}', team="TB", channel="C_ELSEWHERE",
                            response_url=hook)
    assert (await chat.post("/chatops/slack/interactions", data=body,
                            headers={**FORM, **signed(body, SECRET_B)})).status == 200
    await slack.wait_for(lambda: bool(slack.on("/actions/T0/8/c")))
    answer = slack.on("/actions/T0/8/c")[0].json()
    assert "does not answer in this channel" in texts(answer) and "beta stuff" not in texts(answer)


def test_the_replay_memory_forgets_signatures_once_their_timestamp_is_stale_and_stays_bounded():
    clock = [1_000_000.0]
    guard = ReplayGuard(clock=lambda: clock[0], limit=100)
    workspace = new_workspace("TA", "acme", signing_secret=SECRET_A)
    for i in range(300):
        body = f"text=build {i}".encode()
        headers = signed(body, SECRET_A, timestamp=int(clock[0]))
        verify_slack(workspace, body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"], guard)
        assert len(guard._seen) <= 100
    body = b"text=again"
    headers = signed(body, SECRET_A, timestamp=int(clock[0]))
    verify_slack(workspace, body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"], guard)
    try:
        verify_slack(workspace, body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"], guard)
        raise AssertionError("a replay passed")
    except NotVerified as exc:
        assert exc.reason == "replayed"
    clock[0] += MAX_SKEW_S + 1
    fresh = signed(b"text=later", SECRET_A, timestamp=int(clock[0]))
    verify_slack(workspace, b"text=later", fresh["X-Slack-Request-Timestamp"], fresh["X-Slack-Signature"], guard)
    assert len(guard._seen) == 1  # everything older went stale and was forgotten


async def test_an_engine_failure_answers_that_it_failed_without_the_engines_text(chat, monkeypatch):
    from flightlog.query import trails
    from flightlog.schema.store import StoreError

    def broken(*args, **kwargs):
        raise StoreError("Code: 241. MEMORY_LIMIT_EXCEEDED while reading SELECT message FROM logs WHERE tenant='acme'")

    monkeypatch.setattr(trails, "summary", broken)
    body = await (await post_command(chat, "build 1234")).json()
    assert body["response_type"] == "ephemeral" and "could not answer this time" in texts(body)
    assert "MEMORY_LIMIT" not in orjson.dumps(body).decode() and "SELECT" not in orjson.dumps(body).decode()
