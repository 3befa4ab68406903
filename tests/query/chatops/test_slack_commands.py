"""Slash commands over real HTTP on the real engine: signed like Slack signs, answered in Block
Kit that slack_sdk parses, inert when logs hold pings, and only ever with the workspace's tenant."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from flightlog.query.chatops import answers as answers_module
from flightlog.schema.chatops_workspaces import WorkspaceFile
from flightlog.web.cli import main

from tests.query.chatops.conftest import (
    MM_TOKEN,
    PUBLIC,
    SECRET_A,
    SECRET_B,
    command_body,
    parse_blocks,
    post_command,
    signed,
    texts,
    write_lines,
)

PING = "<!channel> database down <@U123> <http://evil.example|click here> & <!here>"


@pytest.fixture
def build_1234(store):
    """Build 1234 in two tenants: acme's fails with a ping in its first error, beta's holds a secret."""
    acme = write_lines(store, "acme", [
        {"service": "api", "host": "acme-1", "level": "info", "message": "starting build", "build_id": "1234"},
        {"service": "worker", "host": "acme-2", "level": "warn", "message": "slow step", "build_id": "1234"},
        {"service": "api", "host": "acme-1", "level": "error", "message": PING, "build_id": "1234"},
        {"service": "api", "host": "acme-1", "level": "info", "message": "build over", "build_id": "1234"},
    ])
    beta = write_lines(store, "beta", [
        {"service": "billing", "host": "beta-host", "level": "error", "message": "SECRET-B beta only",
         "build_id": "1234"},
    ])
    return acme, beta


def counting(monkeypatch) -> list[str]:
    """Record every command flightlog answers (to show that a refused request ran nothing)."""
    calls: list[str] = []
    real = answers_module.answer

    def spy(store, tenant, command, *args, **kwargs):
        calls.append(f"{tenant}:{command.name}")
        return real(store, tenant, command, *args, **kwargs)

    monkeypatch.setattr(answers_module, "answer", spy)
    return calls


async def test_a_signed_build_command_answers_in_channel_with_status_hosts_levels_first_error_and_buttons(
        chat, build_1234):
    response = await post_command(chat, "build 1234")
    assert response.status == 200
    body = await response.json()
    assert body["response_type"] == "in_channel"
    parse_blocks(body)
    shown = texts(body)
    assert "Build 1234 · failed" in shown
    assert "acme-1" in shown and "acme-2" in shown
    assert "error 1" in body["text"] and "warn 1" in body["text"] and "info 2" in body["text"]
    assert "database down" in shown  # the first error line
    buttons = [e for b in body["blocks"] if b["type"] == "actions" for e in b["elements"]]
    urls = [e.get("url") for e in buttons]
    assert f"{PUBLIC}/builds/1234" in urls
    assert any(u and u.startswith(f"{PUBLIC}/builds/1234?at=") for u in urls)  # to the first error
    assert {e.get("action_id") for e in buttons} >= {answers_module.NEXT_LINES, answers_module.FIRST_ERROR}


async def test_a_line_holding_channel_and_user_pings_is_rendered_inert(chat, build_1234):
    body = await (await post_command(chat, "build 1234")).json()
    raw = orjson.dumps(body).decode()
    for ping in ("<!channel>", "<!here>", "<@U123>", "<http://evil.example|click here>"):
        assert ping not in raw
    assert "&lt;!channel&gt;" in texts(body) and "&lt;@U123&gt;" in texts(body) and "&amp;" in texts(body)


async def test_workspace_a_never_sees_tenant_b_lines_for_the_same_build_id(chat, build_1234):
    a = await (await post_command(chat, "build 1234")).json()
    b = await (await post_command(chat, "build 1234", team="TB", secret=SECRET_B, channel="CB")).json()
    assert "SECRET-B" not in orjson.dumps(a).decode() and "beta-host" not in texts(a)
    assert "beta-host" in texts(b) and "billing" in texts(b)
    assert "acme-1" not in texts(b) and "database down" not in texts(b)
    search_a = await (await post_command(chat, "search SECRET 1h")).json()
    assert "SECRET-B" not in texts(search_a) and "*0* lines match" in texts(search_a)


async def test_forged_stale_and_replayed_signatures_get_401_and_run_nothing(chat, build_1234, monkeypatch):
    calls = counting(monkeypatch)
    body = command_body("build 1234")
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    async def send(headers):
        return await chat.post("/chatops/slack/commands", data=body, headers={**form, **headers})

    forged = signed(body, "not-the-secret-of-workspace-a")
    stale = signed(body, SECRET_A, timestamp=int(time.time()) - 6 * 60)
    future = signed(body, SECRET_A, timestamp=int(time.time()) + 6 * 60)
    other_body = signed(command_body("build 9999"), SECRET_A)  # a real signature, of another body
    for headers, reason in ((forged, "forged"), (stale, "stale"), (future, "stale"), (other_body, "forged"), ({}, "missing")):
        response = await send(headers)
        assert response.status == 401, reason
        assert (await response.json())["reason"] == reason
    assert calls == []
    good = signed(body, SECRET_A)
    assert (await send(good)).status == 200
    assert calls == ["acme:build"]
    replay = await send(good)
    assert replay.status == 401 and (await replay.json())["reason"] == "replayed"
    assert calls == ["acme:build"]


async def test_a_workspace_signed_with_another_workspaces_secret_is_refused(chat, build_1234, monkeypatch):
    calls = counting(monkeypatch)
    response = await post_command(chat, "build 1234", team="TB", secret=SECRET_A, channel="CB")
    assert response.status == 401 and calls == []


async def test_an_unknown_workspace_or_channel_gets_a_refusal_in_slacks_format_and_nothing_runs(
        chat, build_1234, monkeypatch):
    calls = counting(monkeypatch)
    unknown = await (await post_command(chat, "build 1234", team="TZZZ", secret="whatever")).json()
    assert unknown["response_type"] == "ephemeral" and "not connected" in unknown["text"]
    channel = await (await post_command(chat, "build 1234", team="TB", secret=SECRET_B, channel="C_OTHER")).json()
    assert channel["response_type"] == "ephemeral" and "does not answer in this channel" in texts(channel)
    parse_blocks(channel)
    assert calls == []


async def test_q_makes_the_answer_ephemeral_and_help_lists_every_command(chat, build_1234):
    quiet = await (await post_command(chat, "build 1234 -q")).json()
    assert quiet["response_type"] == "ephemeral"
    helped = await (await post_command(chat, "help")).json()
    parse_blocks(helped)
    for name in ("build <id>", "deploy <id>", "search &lt;query&gt;", "errors &lt;service&gt;", "alerts", "help"):
        assert name.replace("<", "&lt;").replace(">", "&gt;") in texts(helped)
    unknown = await (await post_command(chat, "frobnicate")).json()
    assert unknown["response_type"] == "ephemeral" and "no command" in texts(unknown)
    missing = await (await post_command(chat, "build 404404")).json()
    assert missing["response_type"] == "ephemeral" and "No build 404404 in tenant acme" in texts(missing)


async def test_search_answers_with_count_sparkline_newest_five_and_a_link(chat, store):
    write_lines(store, "acme", [{"service": "api", "level": "error", "message": f"timeout talking to db #{i}"}
                                for i in range(12)])
    body = await (await post_command(chat, 'search "timeout talking" 15m')).json()
    parse_blocks(body)
    shown = texts(body)
    assert "*12* lines match" in shown
    assert any(ch in shown for ch in "▁▂▃▄▅▆▇█") and "one mark per minute" in shown
    assert "Newest 5" in shown
    newest = [b for b in body["blocks"] if b["type"] == "section" and b["text"]["text"].startswith("```")][0]
    assert newest["text"]["text"].count("timeout talking") == 5
    assert "#11" in newest["text"]["text"] and "#7" in newest["text"]["text"] and "#6" not in newest["text"]["text"]
    link = [e["url"] for b in body["blocks"] if b["type"] == "actions" for e in b["elements"]][0]
    assert link.startswith(f"{PUBLIC}/search?q=") and "from=15m" in link
    bad = await (await post_command(chat, "search service:(")).json()
    assert bad["response_type"] == "ephemeral" and "does not parse" in texts(bad)


async def test_errors_compares_the_window_with_the_one_before_and_lists_the_top_messages(chat, store):
    now = time.time_ns()
    from tests.query.data import NS, insert, make_line

    rows = [make_line(now - 10 * 60 * NS + i, tenant="acme", service="api", level="error", message=m)
            for i, m in enumerate(["db down"] * 5 + ["cache miss storm"] * 3 + ["disk full"] * 2 + ["rare"])]
    rows += [make_line(now - 90 * 60 * NS + i, tenant="acme", service="api", level="fatal", message="old")
             for i in range(4)]
    rows += [make_line(now - 10 * 60 * NS, tenant="acme", service="worker", level="error", message="not api")]
    insert(store, rows)
    body = await (await post_command(chat, "errors api 1h")).json()
    parse_blocks(body)
    shown = texts(body)
    assert "*11* errors from `api`" in shown
    assert "*The 1h before*\n4" in shown and "+175%" in shown
    assert "5× db down" in shown and "3× cache miss storm" in shown and "2× disk full" in shown
    assert "rare" not in shown and "not api" not in shown


async def test_a_slow_query_is_acknowledged_at_once_and_answered_through_response_url(
        aiohttp_client, chat_settings, store, workspaces, slack, build_1234, monkeypatch):
    from dataclasses import replace

    from flightlog.web.server import create_app

    real = answers_module.answer

    def slow(*args, **kwargs):
        time.sleep(0.6)  # a query slower than the time Slack is given
        return real(*args, **kwargs)

    monkeypatch.setattr(answers_module, "answer", slow)
    client = await aiohttp_client(create_app(replace(chat_settings, chatops_answer_within_ms=100), roles={"query"},
                                             store=store))
    hook = f"{slack.url}/commands/T0/123/abc"
    response = await post_command(client, "build 1234", response_url=hook)
    ack = await response.json()
    assert response.status == 200 and ack["response_type"] == "ephemeral" and "looking that up" in ack["text"]
    assert not slack.on("/commands/T0/123/abc")
    await slack.wait_for(lambda: bool(slack.on("/commands/T0/123/abc")))
    later = slack.on("/commands/T0/123/abc")[0].json()
    assert later["response_type"] == "in_channel" and later["replace_original"] is False
    parse_blocks(later)
    assert "Build 1234 · failed" in texts(later) and "SECRET-B" not in orjson.dumps(later).decode()


async def test_a_slow_answer_is_not_posted_to_a_response_url_outside_slack(
        aiohttp_client, chat_settings, store, workspaces, slack, build_1234, monkeypatch):
    from dataclasses import replace

    from flightlog.web.server import create_app

    client = await aiohttp_client(create_app(replace(chat_settings, chatops_answer_within_ms=0), roles={"query"},
                                             store=store))
    response = await post_command(client, "build 1234", response_url="http://127.0.0.1:9/steal")
    body = await response.json()
    assert body["response_type"] == "ephemeral" and "no Slack response URL" in texts(body)
    await asyncio.sleep(0.3)
    assert slack.seen == []


async def test_mattermost_slash_commands_are_verified_by_their_token_and_answered_in_markdown(
        chat, build_1234, monkeypatch):
    calls = counting(monkeypatch)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    good = await chat.post("/chatops/slack/commands", data=command_body("build 1234", team="MM")
                           .replace(b"legacy-verification-token", MM_TOKEN.encode()), headers=form)
    assert good.status == 200
    body = await good.json()
    assert body["response_type"] == "in_channel" and "blocks" not in body
    text = body["text"]
    assert "#### Build 1234 · failed" in text and "**Build 1234** is **failed**" in text
    assert f"[Open the trail]({PUBLIC}/builds/1234)" in text
    assert "```\n" in text and "error api/acme-1 <!\u200b" not in text
    assert "<!channel> database down" in text.split("```\n")[1]  # in a code block: shown as logged, inert
    assert "@channel" not in text and "@here" not in text  # Mattermost's own pings, made inert
    bad = await chat.post("/chatops/slack/commands", data=command_body("build 1234", team="MM"), headers=form)
    assert bad.status == 401
    assert calls == ["acme:build"]


async def test_a_line_naming_mattermost_mentions_pings_nobody_there(chat, store):
    write_lines(store, "acme", [{"level": "error", "message": "@channel @all @here wake up @alice",
                                 "build_id": "mm1", "host": "@here-host"}])
    body = await (await chat.post("/chatops/slack/commands", data=command_body("build mm1", team="MM")
                                  .replace(b"legacy-verification-token", MM_TOKEN.encode()),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})).json()
    text = body["text"]
    assert "wake up" in text and "here-host" in text
    for mention in ("@channel", "@all", "@here", "@alice"):
        assert mention not in text
    assert "@\u200bchannel" in text


async def test_chatops_paths_need_no_api_key_but_keyed_routes_still_do(chat_settings, store, workspaces,
                                                                       aiohttp_client, build_1234):
    from flightlog.schema.api_keys import KeyFile, new_key
    from flightlog.web.server import create_app

    record, _ = new_key("acme", "read")
    KeyFile(chat_settings.data_dir).add(record)
    client = await aiohttp_client(create_app(chat_settings, roles={"query"}, store=store))
    assert (await client.get("/api/v1/builds/1234")).status == 401
    assert (await post_command(client, "build 1234")).status == 200
    assert (await post_command(client, "build 1234", headers={})).status == 401


def test_add_slack_maps_a_workspace_to_a_tenant_and_keeps_secrets_in_a_private_file(tmp_path, capsys):
    data = tmp_path / "d"
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t\n")
    token = tmp_path / "token"
    token.write_text("xoxb-1\n")
    assert main(["chatops", "add-slack", "--team", "T123", "--tenant", "acme", "--signing-secret-file", str(secret),
                 "--bot-token-file", str(token), "--channels", "C1,C2", "--data-dir", str(data)]) == 0
    [ws] = WorkspaceFile(data).load()
    assert (ws.team, ws.tenant, ws.signing_secret, ws.bot_token, ws.channels) == ("T123", "acme", "s3cr3t", "xoxb-1",
                                                                                   ("C1", "C2"))
    assert (data / "chatops.json").stat().st_mode & 0o077 == 0
    assert main(["chatops", "list", "--data-dir", str(data)]) == 0
    listed = capsys.readouterr().out
    assert "T123" in listed and "s3cr3t" not in listed and "xoxb-1" not in listed
    assert main(["chatops", "add-slack", "--team", "T 1", "--tenant", "acme", "--signing-secret-file", str(secret),
                 "--data-dir", str(data)]) == 2
    assert "--team" in capsys.readouterr().err
    assert main(["chatops", "remove", "T123", "--data-dir", str(data)]) == 0
    assert WorkspaceFile(data).load() == []


async def test_a_deploy_answer_marks_hosts_that_went_silent_as_gone(chat, store):
    from tests.query.data import NS, insert, make_line

    now = time.time_ns()
    insert(store, [
        make_line(now - 30 * 60 * NS, tenant="acme", host="old-box", service="web", message="bye", deploy_id="d-9"),
        make_line(now - 20 * NS, tenant="acme", host="new-box", service="web", message="hi", deploy_id="d-9"),
    ])
    body = await (await post_command(chat, "deploy d-9")).json()
    parse_blocks(body)
    [hosts] = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"
               and b["text"]["text"].startswith("*Hosts*")]
    assert hosts.startswith("*Hosts* (2, 1 gone)")
    rows = {row.split("`")[1]: row for row in hosts.splitlines()[1:]}
    assert "_gone_" in rows["old-box"] and "_gone_" not in rows["new-box"]
    assert "Deploy d-9 · ok" in texts(body) and "_No error or fatal line._" in texts(body)
    assert f"{PUBLIC}/deploys/d-9" in orjson.dumps(body).decode()
