"""Evaluating a rule against the real engine: search rules with groups, SQL rules through the
console's guard, build rules, and tenants kept apart."""

from __future__ import annotations

import time

import pytest
from flightlog.query.alerts.evaluate import EvaluationError, evaluate, group_query
from flightlog.query.alerts.rules import parse_rule
from flightlog.query.search import parse_query

from tests.query.alerts.conftest import lines
from tests.query.data import NS, insert, make_line


def test_a_search_rule_gives_one_group_per_service_and_host_with_its_count(store):
    lines(store, 5, service="checkout", host="web-1", level="error")
    lines(store, 2, service="checkout", host="web-2", level="error")
    lines(store, 9, service="checkout", host="web-1", level="info")
    lines(store, 7, service="billing", host="web-1", level="error")
    lines(store, 50, ago_s=600, service="checkout", host="web-3", level="error")  # before the window
    rule = parse_rule({"name": "r", "query": "level:>=error service:checkout", "window": "5m",
                       "condition": "count > 3", "group_by": ["service", "host"]})
    samples = evaluate(store, "default", rule, time.time_ns())
    got = {(s.labels["service"], s.labels["host"]): (s.value, s.active) for s in samples}
    assert got == {("checkout", "web-1"): (5.0, True), ("checkout", "web-2"): (2.0, False)}


def test_a_search_rule_without_group_by_counts_zero_when_nothing_matches(store):
    rule = parse_rule({"name": "r", "query": "level:error", "condition": "count < 1"})
    [sample] = evaluate(store, "default", rule, time.time_ns())
    assert sample.labels == {} and sample.value == 0 and sample.active


def test_a_rule_sees_only_its_own_tenants_lines(store):
    lines(store, 4, tenant="acme", level="error")
    lines(store, 9, tenant="other", level="error")
    rule = parse_rule({"name": "r", "query": "level:error", "condition": "count > 0"})
    [sample] = evaluate(store, "acme", rule, time.time_ns())
    assert sample.value == 4


def test_grouping_by_an_attribute_labels_the_group_with_a_prometheus_name(store):
    lines(store, 3, level="error", attrs={"http.status": "502"})
    lines(store, 1, level="error", attrs={"http.status": "500"})
    rule = parse_rule({"name": "r", "query": "level:error", "condition": "count > 2", "group_by": ["attrs.http.status"]})
    samples = {s.labels["attrs_http_status"]: s for s in evaluate(store, "default", rule, time.time_ns())}
    assert samples["502"].active and not samples["500"].active


def test_a_groups_query_finds_exactly_its_lines_even_with_quotes_in_the_value(store):
    host = 'we"b \\1'
    lines(store, 3, host=host, level="error")
    lines(store, 2, host="web-2", level="error")
    rule = parse_rule({"name": "r", "query": "level:error OR level:fatal", "condition": "count > 0",
                       "group_by": ["host"]})
    [sample] = [s for s in evaluate(store, "default", rule, time.time_ns()) if s.labels["host"] == host]
    q = group_query(rule, sample.labels)
    assert q.startswith("(level:error OR level:fatal) host:")
    from flightlog.query.search import search

    found = search(store, "default", parse_query(q), since_ns=time.time_ns() - 300 * NS, until_ns=time.time_ns())
    assert len(found["lines"]) == 3 and {line["host"] for line in found["lines"]} == {host}
    assert sample.links["lines"].startswith("/search?q=")


def test_a_sql_rule_reads_value_and_label_columns_through_the_guard(store):
    lines(store, 3, service="api", level="error")
    lines(store, 1, service="web", level="error")
    rule = parse_rule({"name": "sql errors", "kind": "sql", "condition": "value >= 2",
                       "query": "SELECT service, count() AS value FROM logs WHERE level = 'error' GROUP BY service"})
    got = {s.labels["service"]: (s.value, s.active) for s in evaluate(store, "default", rule, time.time_ns())}
    assert got == {"api": (3.0, True), "web": (1.0, False)}
    audit = store.query("SELECT who, outcome FROM sql_audit").rows
    assert audit == [["alert rule sql errors", "ok"]]


def test_a_sql_rule_cannot_read_another_tenant_or_a_file(store):
    lines(store, 5, tenant="other", level="error")
    rule = parse_rule({"name": "r", "kind": "sql", "condition": "value > 0",
                       "query": "SELECT count() AS value FROM logs"})
    [sample] = evaluate(store, "acme", rule, time.time_ns())
    assert sample.value == 0
    bad = parse_rule({"name": "r", "kind": "sql", "condition": "value > 0",
                      "query": "SELECT count() AS value FROM file('/etc/hostname', 'LineAsString')"})
    with pytest.raises(EvaluationError, match="file"):
        evaluate(store, "acme", bad, time.time_ns())


def test_a_sql_rule_without_a_value_column_says_so(store):
    rule = parse_rule({"name": "r", "kind": "sql", "condition": "value > 0", "query": "SELECT 1 AS n"})
    with pytest.raises(EvaluationError, match="needs a `value` column"):
        evaluate(store, "default", rule, time.time_ns())


def test_a_build_rule_fires_for_a_failed_build_with_its_first_error_line(store):
    now = time.time_ns()
    insert(store, [
        make_line(now - 20 * NS, build_id="b-ok", message="compiling"),
        make_line(now - 19 * NS, build_id="b-bad", message="compiling"),
        make_line(now - 18 * NS, build_id="b-bad", level="error", host="runner-3", service="ci",
                  message="test_checkout failed <!channel>"),
        make_line(now - 17 * NS, build_id="b-bad", level="error", message="second error"),
    ])
    rule = parse_rule({"name": "builds", "kind": "build", "window": "15m"})
    samples = {s.labels["build_id"]: s for s in evaluate(store, "default", rule, now)}
    assert samples["b-bad"].active and not samples["b-ok"].active
    assert samples["b-bad"].detail["first_error"] == "ci/runner-3: test_checkout failed <!channel>"
    assert samples["b-bad"].links["first_error"].startswith("/builds/b-bad?at=")


def test_a_deploy_rule_fires_when_the_error_rate_after_it_exceeds_the_factor(store):
    now = time.time_ns()
    start = now - 5 * 60 * NS
    rows = [make_line(start - m * 60 * NS, service="api", level="error", message="old") for m in range(1, 3)]
    rows += [make_line(start, service="api", deploy_id="d1", message="deploy d1 starts")]
    rows += [make_line(start + i * NS, service="api", level="error", message="boom") for i in range(1, 60)]
    insert(store, rows)
    rule = parse_rule({"name": "deploys", "kind": "deploy", "window": "30m", "deploy_minutes": 10,
                       "deploy_factor": 3})
    samples = {(s.labels["deploy_id"], s.labels["reason"]): s for s in evaluate(store, "default", rule, now)}
    rate = samples[("d1", "error_rate")]
    assert rate.active and rate.value > 3


def test_a_failing_search_rule_shows_the_errors_kind_never_the_rows_the_engine_quoted(store):
    from flightlog.schema.store import StoreError

    class Failing:
        kind = "embedded"

        def query(self, *args, **kwargs):
            raise StoreError("Code: 6. DB::Exception: Cannot parse string 'SECRET-ROW' as UInt64 (CANNOT_PARSE_TEXT)", 6)

    rule = parse_rule({"name": "r", "query": "level:error"})
    with pytest.raises(EvaluationError) as caught:
        evaluate(Failing(), "default", rule, time.time_ns())
    assert "SECRET-ROW" not in str(caught.value) and "CANNOT_PARSE_TEXT (code 6)" in str(caught.value)
