"""Search over the JSON API: filters, words, phrases, time windows, paging, errors."""

from __future__ import annotations

import time

from tests.query.data import NS, insert, make_fleet, make_line, rfc3339


def _messages(body):
    return [line["message"] for line in body["lines"]]


async def _search(client, **params):
    resp = await client.get("/api/v1/search", params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_search_filters_are_anded_and_results_are_newest_first(client, store):
    fleet = make_fleet(store)
    body = await _search(client, q="service:api level:error", limit="10000", **{"from": "1d"})
    want = sorted(
        (r for r in fleet.lines if r["service"] == "api" and r["level"] == "error"),
        key=lambda r: (r["ts_ns"], r["seq"]),
        reverse=True,
    )
    assert want
    assert [line["ref"] for line in body["lines"]] == [f"{r['ts_ns']}-{r['seq']}" for r in want]
    assert body["next_cursor"] is None


async def test_search_by_each_id_field(client, store):
    fleet = make_fleet(store, builds=5)
    for field, value in (
        ("build_id", "b002"),
        ("deploy_id", "d000"),
        ("trace_id", "t0031"),
        ("request_id", "r004-7"),
        ("host", "api-01"),
    ):
        body = await _search(client, q=f"{field}:{value}", limit="10000", **{"from": "1d"})
        assert len(body["lines"]) == sum(1 for r in fleet.lines if r[field] == value), field
        assert body["lines"] and all(line[field] == value for line in body["lines"]), field


async def test_bare_words_match_whole_tokens_in_any_case(client, store):
    insert(
        store,
        [
            make_line(message="Connection TIMEOUT after 30s"),
            make_line(message="timeouts are configurable"),
            make_line(message="all good"),
        ],
    )
    assert _messages(await _search(client, q="timeout")) == ["Connection TIMEOUT after 30s"]
    assert _messages(await _search(client, q="TimeOut connection")) == ["Connection TIMEOUT after 30s"]
    assert _messages(await _search(client, q="timeout good")) == []


async def test_quoted_phrases_match_as_phrases_not_as_scattered_words(client, store):
    insert(
        store,
        [
            make_line(message="ERROR: Connection refused by upstream"),
            make_line(message="refused connection attempt"),
            make_line(message="connection refusedness is not a word"),
            make_line(message="path /var/log/app.log not found"),
        ],
    )
    assert _messages(await _search(client, q='"connection refused"')) == ["ERROR: Connection refused by upstream"]
    assert _messages(await _search(client, q='"/var/log/app.log"')) == ["path /var/log/app.log not found"]
    assert _messages(await _search(client, q="app.log")) == ["path /var/log/app.log not found"]
    assert _messages(await _search(client, q='"app.l"')) == []


async def test_regex_characters_in_a_phrase_are_literal(client, store):
    insert(store, [make_line(message="cost is $5 (approx.) [x]"), make_line(message="cost is 5 approx x")])
    assert _messages(await _search(client, q='"$5 (approx.) [x]"')) == ["cost is $5 (approx.) [x]"]


async def test_search_defaults_to_the_last_hour_and_honours_from_and_to(client, store):
    now = time.time_ns()
    insert(
        store,
        [
            make_line(now - 2 * 86400 * NS, message="two days ago"),
            make_line(now - 3 * 3600 * NS, message="three hours ago"),
            make_line(now - 60 * NS, message="a minute ago"),
        ],
    )
    assert _messages(await _search(client)) == ["a minute ago"]
    assert _messages(await _search(client, **{"from": "1d"})) == ["a minute ago", "three hours ago"]
    assert _messages(await _search(client, **{"from": "7d"})) == ["a minute ago", "three hours ago", "two days ago"]
    assert _messages(await _search(client, **{"from": "7d", "to": "1h"})) == ["three hours ago", "two days ago"]
    window_from = rfc3339(now - 4 * 3600 * NS)
    window_to = rfc3339(now - 2 * 3600 * NS)
    assert _messages(await _search(client, **{"from": window_from, "to": window_to})) == ["three hours ago"]


async def test_an_id_filter_without_from_searches_all_retained_time(client, store):
    old = time.time_ns() - 5 * 86400 * NS
    insert(store, [make_line(old, trace_id="abc", message="old span")])
    assert _messages(await _search(client, q="trace_id:abc")) == ["old span"]
    assert _messages(await _search(client, q="span")) == []


async def test_search_pagination_covers_every_match_once_newest_first(client, store):
    fleet = make_fleet(store, builds=10)
    seen, cursor = [], None
    while True:
        params = {"q": "level:info", "limit": "13", "from": "1d", **({"cursor": cursor} if cursor else {})}
        body = await _search(client, **params)
        seen += [line["ref"] for line in body["lines"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    want = sorted((r for r in fleet.lines if r["level"] == "info"), key=lambda r: (r["ts_ns"], r["seq"]), reverse=True)
    assert seen == [f"{r['ts_ns']}-{r['seq']}" for r in want]


async def test_search_only_sees_the_callers_tenant(client, store):
    insert(store, [make_line(message="visible"), make_line(message="hidden", tenant="other")])
    assert _messages(await _search(client)) == ["visible"]


async def test_malformed_query_is_a_400_with_the_position(client, store):
    for q, position in (('level:error "unclosed', 13), ("service:", 9), ("colour:red", 1)):
        resp = await client.get("/api/v1/search", params={"q": q})
        assert resp.status == 400, q
        body = await resp.json()
        assert body["error"].startswith("q: ")
        assert body["position"] == position
        assert f"position {position}" in body["error"]


async def test_bad_time_or_limit_is_a_400_naming_the_param(client, store):
    for params, name in (
        ({"from": "yesterday"}, "from"),
        ({"to": "soon"}, "to"),
        ({"from": "1h", "to": "2h"}, "from"),
        ({"limit": "10001"}, "limit"),
        ({"cursor": "@@"}, "cursor"),
    ):
        resp = await client.get("/api/v1/search", params=params)
        assert resp.status == 400, params
        assert (await resp.json())["error"].startswith(name + ":"), params


async def test_quotes_and_sql_in_values_are_only_ever_data(client, store):
    insert(store, [make_line(service="it's", message="x' OR 1=1 --")])
    assert _messages(await _search(client, q='service:"it\'s"')) == ["x' OR 1=1 --"]
    assert _messages(await _search(client, q='"x\' OR 1=1 --"')) == ["x' OR 1=1 --"]
    assert _messages(await _search(client, q="service:x'")) == []


async def test_or_negation_prefixes_levels_and_attrs_select_the_right_lines(client, store):
    insert(
        store,
        [
            make_line(service="api", level="error", message="a", attrs={"region": "eu-west", "code": "500"}),
            make_line(service="api", level="warn", message="b", attrs={"region": "us-east"}),
            make_line(service="apigw", level="info", message="c timeout"),
            make_line(service="worker", level="fatal", message="d Timeouts"),
            make_line(service="worker", level="debug", message="e", trace_id="t1"),
        ],
    )

    async def found(q):
        return sorted(_messages(await _search(client, q=q)))

    assert await found("service:api OR service:worker") == ["a", "b", "d Timeouts", "e"]
    assert await found("-service:api") == ["c timeout", "d Timeouts", "e"]
    assert await found("service:api*") == ["a", "b", "c timeout"]
    assert await found("level:>=warn") == ["a", "b", "d Timeouts"]
    assert await found("level:<info") == ["e"]
    assert await found("attrs.region:eu*") == ["a"]
    assert await found("attrs.code:500") == ["a"]
    assert await found("attrs.region:*") == ["a", "b"]
    assert await found("-attrs.region:*") == ["c timeout", "d Timeouts", "e"]
    assert await found("trace_id:*") == ["e"]
    assert await found("timeout*") == ["c timeout", "d Timeouts"]
    assert await found("(service:api level:warn) OR (service:worker -level:fatal)") == ["b", "e"]
    assert await found("NOT (level:error OR level:warn) service:api*") == ["c timeout"]
