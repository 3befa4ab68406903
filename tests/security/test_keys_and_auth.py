"""Keys: created once, stored as a hash, sent in the forms real clients use; scopes, sessions, CSRF."""

from __future__ import annotations

import base64
import dataclasses
import re
import time

import orjson
import pytest
from flightlog.schema.api_keys import KeyFile, KeyRing, hash_key
from flightlog.web import cli
from flightlog.web.server import create_app

from tests.security.conftest import bearer, wait_for_rows


def test_keys_create_prints_the_key_once_and_stores_only_its_hash(tmp_path, capsys):
    data = str(tmp_path / "d")
    assert cli.main(["keys", "create", "--tenant", "acme", "--scope", "ingest", "--name", "ci", "--data-dir", data]) == 0
    key = capsys.readouterr().out.strip()
    assert re.fullmatch(r"flk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key)
    stored = (tmp_path / "d" / "keys.json").read_text()
    assert key not in stored and key.split("_")[-1] not in stored
    assert hash_key(key) in stored
    assert oct((tmp_path / "d" / "keys.json").stat().st_mode & 0o777) == "0o600"

    assert cli.main(["keys", "list", "--json", "--data-dir", data]) == 0
    listed = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(k["tenant"], k["scope"], k["name"]) for k in listed] == [("acme", "ingest", "ci")]
    assert "hash" not in listed[0]

    assert cli.main(["keys", "revoke", "ci", "--data-dir", data]) == 0
    capsys.readouterr()
    assert cli.main(["keys", "list", "--json", "--data-dir", data]) == 0
    assert capsys.readouterr().out == ""
    assert KeyRing(KeyFile(tmp_path / "d")).lookup(key) is None


def test_keys_create_refuses_a_bad_scope_or_tenant(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["keys", "create", "--tenant", "a", "--scope", "root", "--data-dir", str(tmp_path)])
    assert cli.main(["keys", "create", "--tenant", "a b;", "--scope", "read", "--data-dir", str(tmp_path)]) == 2
    assert "tenant" in capsys.readouterr().err


def test_serve_refuses_a_public_address_with_no_keys_unless_insecure(tmp_path, make_key, settings):
    public = dataclasses.replace(settings, host="0.0.0.0")
    assert "refusing" in cli.open_server_refusal(public)
    assert cli.open_server_refusal(dataclasses.replace(public, insecure=True)) is None
    assert cli.open_server_refusal(settings) is None  # loopback runs open
    make_key("acme", "admin")
    assert cli.open_server_refusal(public) is None
    parsed = cli.build_parser().parse_args(["serve", "--insecure"])
    assert parsed.insecure is True


async def test_with_no_keys_on_loopback_the_server_runs_open(app_client):
    resp = await app_client.post("/api/v1/logs", data=b'{"msg":"open"}')
    assert resp.status == 200, await resp.text()
    resp = await app_client.get("/api/v1/search")
    assert resp.status == 200


async def test_every_protected_path_needs_a_key_once_one_exists(app_client, make_key):
    make_key("acme", "admin")
    for method, path in [("POST", "/api/v1/logs"), ("POST", "/v1/logs"), ("POST", "/loki/api/v1/push"),
                         ("POST", "/_bulk"), ("GET", "/api/v1/search"), ("POST", "/api/v1/sql"),
                         ("GET", "/api/v1/tail"), ("GET", "/metrics"), ("GET", "/api/v1/sql/audit")]:
        resp = await app_client.request(method, path, data=b"{}")
        assert resp.status == 401, (method, path, await resp.text())
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = await app_client.get("/search", headers={"Accept": "text/html"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=/search")
    for path in ("/healthz", "/login", "/static/style.css", "/ready"):
        assert (await app_client.get(path)).status == 200, path
    resp = await app_client.get("/", headers={"Accept": "application/json"})  # an Elasticsearch client's probe
    assert resp.status == 200 and "version" in await resp.json()


async def test_scopes_ingest_keys_cannot_read_and_read_keys_cannot_ingest(app_client, make_key):
    ingest, read = make_key("acme", "ingest"), make_key("acme", "read")
    resp = await app_client.get("/api/v1/search", headers=bearer(ingest))
    assert resp.status == 403 and "scope" in (await resp.json())["error"]
    resp = await app_client.post("/api/v1/logs", data=b'{"msg":"x"}', headers=bearer(read))
    assert resp.status == 403
    resp = await app_client.get("/api/v1/search", headers=bearer("flk_0000_notakey"))
    assert resp.status == 401


async def test_ingest_takes_the_key_in_every_form_real_clients_send(app_client, make_key, store):
    key = make_key("acme", "ingest")
    basic = base64.b64encode(f"loki-user:{key}".encode()).decode()
    es_pair = base64.b64encode(f"some-id:{key}".encode()).decode()
    forms = [
        {"Authorization": f"Bearer {key}"},
        {"Authorization": f"Basic {basic}"},
        {"Authorization": f"ApiKey {key}"},
        {"Authorization": f"ApiKey {es_pair}"},
        {"X-API-Key": key},
    ]
    for n, headers in enumerate(forms):
        resp = await app_client.post("/api/v1/logs", data=orjson.dumps({"msg": f"form {n}"}), headers=headers)
        assert resp.status == 200, (headers, await resp.text())
    # now: a time older than the retention would be refused
    loki = {"streams": [{"stream": {"job": "j"}, "values": [[str(time.time_ns()), "via loki"]]}]}
    resp = await app_client.post("/loki/api/v1/push", data=orjson.dumps(loki),
                                 headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"})
    assert resp.status == 204, await resp.text()
    bulk = b'{"create":{}}\n{"message":"via es","@timestamp":%d}\n' % (time.time_ns() // 1_000_000)
    resp = await app_client.post("/_bulk", data=bulk, headers={"Authorization": f"ApiKey {es_pair}",
                                                               "Content-Type": "application/x-ndjson"})
    assert resp.status == 200 and resp.headers["X-Elastic-Product"] == "Elasticsearch"
    otlp = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "via otlp"}}]}]}]}
    resp = await app_client.post("/v1/logs", data=orjson.dumps(otlp),
                                 headers={**bearer(key), "Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()
    got = await wait_for_rows(store, "SELECT count() FROM logs WHERE tenant = 'acme'", 8)
    assert got == 8
    assert store.query("SELECT count() FROM logs WHERE tenant != 'acme'").scalar() == 0


async def test_only_an_admin_key_may_name_another_tenant(app_client, make_key, store):
    ingest, admin = make_key("acme", "ingest"), make_key("ops", "admin")
    for key, marker in ((ingest, "from-ingest"), (admin, "from-admin")):
        resp = await app_client.post("/api/v1/logs", data=orjson.dumps({"msg": marker, "tenant": "victim"}),
                                     headers={**bearer(key), "X-Scope-OrgID": "victim"})
        assert resp.status == 200
    await wait_for_rows(store, "SELECT count() FROM logs", 2)
    rows = dict(store.query("SELECT message, tenant FROM logs").rows)
    assert rows == {"from-ingest": "acme", "from-admin": "victim"}


async def test_a_revoked_key_stops_working_on_the_next_request(app_client, make_key, settings):
    key = make_key("acme", "read")
    assert (await app_client.get("/api/v1/search", headers=bearer(key))).status == 200
    record = KeyRing(KeyFile(settings.data_dir))
    record.reload()
    KeyFile(settings.data_dir).revoke(record.lookup(key).id)
    assert (await app_client.get("/api/v1/search", headers=bearer(key))).status == 401


def _hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


async def test_ui_login_sets_an_httponly_strict_session_and_post_forms_need_the_csrf_token(app_client, make_key):
    read, ingest = make_key("acme", "read"), make_key("acme", "ingest")
    page = await (await app_client.get("/login?next=/search")).text()
    token = _hidden(page, "csrf_token")
    # an ingest key cannot log in to the UI
    resp = await app_client.post("/login", data={"key": ingest, "csrf_token": token, "next": "/search"},
                                 allow_redirects=False)
    assert resp.status == 401
    page = await resp.text()
    assert "scope ingest" in page
    token = _hidden(page, "csrf_token")
    # a login without the form's token (a forged login) is refused
    resp = await app_client.post("/login", data={"key": read, "csrf_token": "forged", "next": "/"},
                                 allow_redirects=False)
    assert resp.status == 401
    token = _hidden(await resp.text(), "csrf_token")
    resp = await app_client.post("/login", data={"key": read, "csrf_token": token, "next": "//evil.example/"},
                                 allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/"
    cookie = resp.headers["Set-Cookie"]
    assert "flightlog_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert read not in cookie

    resp = await app_client.get("/", headers={"Accept": "text/html"})
    assert resp.status == 200
    html = await resp.text()
    csrf = _hidden(html, "csrf_token")  # the logout form carries it
    # a POST riding on the cookie without the token is refused; with it, it goes through
    resp = await app_client.post("/api/v1/sql", json={"sql": "SELECT 1"})
    assert resp.status == 403 and "CSRF" in (await resp.json())["error"]
    resp = await app_client.post("/api/v1/sql", json={"sql": "SELECT 1"}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 200, await resp.text()
    resp = await app_client.post("/logout", data={"csrf_token": "wrong"}, allow_redirects=False)
    assert resp.status == 403
    resp = await app_client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 303
    resp = await app_client.get("/api/v1/search")
    assert resp.status == 401


async def test_cross_site_posts_are_refused_even_when_running_open(app_client):
    resp = await app_client.post("/api/v1/sql", json={"sql": "SELECT 1"}, headers={"Origin": "https://evil.example"})
    assert resp.status == 403
    resp = await app_client.post("/api/v1/sql", json={"sql": "SELECT 1"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert resp.status == 403
    origin = f"http://{app_client.server.host}:{app_client.server.port}"
    resp = await app_client.post("/api/v1/sql", json={"sql": "SELECT 1"}, headers={"Origin": origin})
    assert resp.status == 200, await resp.text()


async def test_security_headers_on_pages_api_and_errors(app_client):
    for path in ("/", "/search", "/api/v1/search", "/no-such-page", "/static/style.css"):
        resp = await app_client.get(path, headers={"Accept": "text/html"})
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, path
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "same-origin"


async def test_per_key_request_and_line_limits_answer_429_with_retry_after(aiohttp_client, settings, store, make_key):
    app = create_app(settings, store=store)
    client = await aiohttp_client(app)
    few_requests = make_key("acme", "ingest", requests_per_second=3)
    statuses = []
    for _ in range(6):
        resp = await client.post("/api/v1/logs", data=b'{"msg":"r"}', headers=bearer(few_requests))
        statuses.append(resp.status)
        if resp.status == 429:
            assert int(resp.headers["Retry-After"]) >= 1
    assert statuses[:3] == [200, 200, 200] and 429 in statuses

    few_lines = make_key("acme", "ingest", lines_per_second=10)
    body = b"\n".join(b'{"msg":"l%d"}' % i for i in range(50))
    resp = await client.post("/api/v1/logs", data=body, headers=bearer(few_lines))
    assert resp.status == 200  # a batch bigger than a second's allowance goes through once
    for path, data, headers in [
        ("/api/v1/logs", body, {}),
        ("/loki/api/v1/push", orjson.dumps({"streams": [{"stream": {"a": "b"}, "values": [[str(time.time_ns()), "x"]]}]}),
         {"Content-Type": "application/json"}),
        ("/_bulk", b'{"create":{}}\n{"message":"x"}\n', {"Content-Type": "application/x-ndjson"}),
    ]:
        resp = await client.post(path, data=data, headers={**bearer(few_lines), **headers})
        assert resp.status == 429, (path, await resp.text())
        assert int(resp.headers["Retry-After"]) >= 4  # 50 lines of debt at 10 lines/s
    other = make_key("acme", "ingest")  # limits are per key
    assert (await client.post("/api/v1/logs", data=body, headers=bearer(other))).status == 200
