"""The query language, as tables of (input → SQL condition and parameters) and (input → error and
position) — no store needed. The SQL text is the grammar's; every user value is a parameter."""

from __future__ import annotations

import pytest
from flightlog.query.querylang import (
    And,
    FieldMatch,
    Not,
    Or,
    QuerySyntaxError,
    TextMatch,
    parse,
    requires_id,
    to_sql,
)

HT = "hasToken(lower(message), {q_p%d:String})"


def _compiled(q: str) -> tuple[str, dict]:
    params: dict = {}
    return to_sql(parse(q), params), params


@pytest.mark.parametrize(
    "q, sql, params",
    [
        ("", "1", {}),
        ("   ", "1", {}),
        ('""', "1", {}),
        ("timeout", HT % 0, {"q_p0": "timeout"}),
        ("TimeOut", HT % 0, {"q_p0": "timeout"}),
        ("service:api", "(service = {q_p0:String})", {"q_p0": "api"}),
        ("level:ERROR", "(level = {q_p0:String})", {"q_p0": "error"}),
        ('host:"web 1"', "(host = {q_p0:String})", {"q_p0": "web 1"}),
        ("service:a:b", "(service = {q_p0:String})", {"q_p0": "a:b"}),
        ("service:api*", "startsWith(service, {q_p0:String})", {"q_p0": "api"}),
        ('service:"api*"', "(service = {q_p0:String})", {"q_p0": "api*"}),
        ("trace_id:*", "(trace_id != '')", {}),
        ("-service:api", "NOT (service = {q_p0:String})", {"q_p0": "api"}),
        ("NOT service:api", "NOT (service = {q_p0:String})", {"q_p0": "api"}),
        ("level:>=warn", "(level IN {q_p0:Array(String)})", {"q_p0": ["warn", "error", "fatal"]}),
        ("level:>warn", "(level IN {q_p0:Array(String)})", {"q_p0": ["error", "fatal"]}),
        ("level:<=debug", "(level IN {q_p0:Array(String)})", {"q_p0": ["trace", "debug"]}),
        ("level:<info", "(level IN {q_p0:Array(String)})", {"q_p0": ["trace", "debug"]}),
        ("level:=Info", "(level = {q_p0:String})", {"q_p0": "info"}),
        ("attrs.http.status:500", "(attrs[{q_p0:String}] = {q_p1:String})", {"q_p0": "http.status", "q_p1": "500"}),
        ("attrs.k8s-pod:*", "mapContains(attrs, {q_p0:String})", {"q_p0": "k8s-pod"}),
        ("attrs.region:eu*", "startsWith(attrs[{q_p0:String}], {q_p1:String})", {"q_p0": "region", "q_p1": "eu"}),
        (
            "service:api level:error",
            "((service = {q_p0:String}) AND (level = {q_p1:String}))",
            {"q_p0": "api", "q_p1": "error"},
        ),
        (
            "service:api AND level:error",
            "((service = {q_p0:String}) AND (level = {q_p1:String}))",
            {"q_p0": "api", "q_p1": "error"},
        ),
        (
            "a b OR c",
            f"(({HT % 0} AND {HT % 1}) OR {HT % 2})",
            {"q_p0": "a", "q_p1": "b", "q_p2": "c"},
        ),
        (
            "a (b OR c)",
            f"({HT % 0} AND ({HT % 1} OR {HT % 2}))",
            {"q_p0": "a", "q_p1": "b", "q_p2": "c"},
        ),
        (
            "-(service:a OR service:b) x",
            f"(NOT ((service = {{q_p0:String}}) OR (service = {{q_p1:String}})) AND {HT % 2})",
            {"q_p0": "a", "q_p1": "b", "q_p2": "x"},
        ),
        ("or", HT % 0, {"q_p0": "or"}),
        ('"OR"', HT % 0, {"q_p0": "or"}),
        (
            "foo-bar",
            f"({HT % 0} AND {HT % 1} AND match(message, concat('(?i)', '(^|[^a-zA-Z0-9])', "
            "regexpQuoteMeta({q_p2:String}), '($|[^a-zA-Z0-9])')))",
            {"q_p0": "foo", "q_p1": "bar", "q_p2": "foo-bar"},
        ),
        (
            '"Connection refused"',
            f"({HT % 0} AND {HT % 1} AND match(message, concat('(?i)', '(^|[^a-zA-Z0-9])', "
            "regexpQuoteMeta({q_p2:String}), '($|[^a-zA-Z0-9])')))",
            {"q_p0": "connection", "q_p1": "refused", "q_p2": "Connection refused"},
        ),
        (
            "timeo*",
            "match(message, concat('(?i)', '(^|[^a-zA-Z0-9])', regexpQuoteMeta({q_p0:String}), ''))",
            {"q_p0": "timeo"},
        ),
        (
            r'"say \"hi\" now"',
            f"({HT % 0} AND {HT % 1} AND {HT % 2} AND match(message, concat('(?i)', '(^|[^a-zA-Z0-9])', "
            "regexpQuoteMeta({q_p3:String}), '($|[^a-zA-Z0-9])')))",
            {"q_p0": "say", "q_p1": "hi", "q_p2": "now", "q_p3": 'say "hi" now'},
        ),
        (
            "x' OR 1=1 --",
            f"(({HT % 0} AND match(message, concat('(?i)', '(^|[^a-zA-Z0-9])', regexpQuoteMeta({{q_p1:String}}), ''))) "
            f"OR (({HT % 2} AND match(message, concat('(?i)', '(^|[^a-zA-Z0-9])', regexpQuoteMeta({{q_p3:String}}), "
            "'($|[^a-zA-Z0-9])'))) AND match(message, concat('(?i)', '', regexpQuoteMeta({q_p4:String}), ''))))",
            {"q_p0": "x", "q_p1": "x'", "q_p2": "1", "q_p3": "1=1", "q_p4": "--"},
        ),
        (
            "--verbose",
            f"({HT % 0} AND match(message, concat('(?i)', '', regexpQuoteMeta({{q_p1:String}}), '($|[^a-zA-Z0-9])')))",
            {"q_p0": "verbose", "q_p1": "--verbose"},
        ),
        ("-5", f"NOT {HT % 0}", {"q_p0": "5"}),
    ],
)
def test_queries_compile_to_sql_from_the_grammar_and_values_as_parameters(q, sql, params):
    assert _compiled(q) == (sql, params)


@pytest.mark.parametrize(
    "q, position, words",
    [
        ('foo "bar', 5, "unclosed quote"),
        ('service:"api', 9, "unclosed quote"),
        ("service:", 9, "empty value for service"),
        ("service: api", 9, "empty value for service"),
        ('host:""', 6, "empty value for host"),
        ("colour:red", 1, "unknown field 'colour'"),
        ("a colour:red", 3, "unknown field 'colour'"),
        ("level:loud", 7, "level 'loud'"),
        ("level:>=loud", 9, "level 'loud'"),
        ("level:>=", 9, "a level is missing after >="),
        ("service:>=api", 9, "compares only by equality"),
        ('foo"bar"', 4, "quote inside a word"),
        ('"a"b', 4, "after a closing quote"),
        ("(a OR b", 1, "'(' without its ')'"),
        ("a (b (c)", 3, "'(' without its ')'"),
        ("a b)", 4, "')' without its '('"),
        ("()", 1, "empty parentheses"),
        ("a OR", 5, "missing after OR"),
        ("a OR OR b", 6, "missing after OR"),
        ("OR a", 1, "missing before OR"),
        ("a AND", 6, "missing after AND"),
        ("NOT", 1, "nothing to negate"),
        ("a -", None, None),  # a lone '-' is a word (it has no tokens)
        ("(service:)", 10, "empty value for service"),
    ],
)
def test_malformed_queries_name_the_problem_and_its_position(q, position, words):
    if position is None:
        parse(q)
        return
    with pytest.raises(QuerySyntaxError) as info:
        parse(q)
    assert words in str(info.value)
    assert info.value.position == position
    assert f"at position {position}" in str(info.value)


def test_the_tree_remembers_where_each_part_started():
    assert parse('level:error  "a b" -c') == And(
        (
            FieldMatch("level", "=", "error", 1),
            TextMatch("a b", 14, quoted=True),
            Not(TextMatch("c", 21), 20),
        )
    )
    assert parse("a OR b") == Or((TextMatch("a", 1), TextMatch("b", 6)))


@pytest.mark.parametrize(
    "q, wide",
    [
        ("trace_id:t", True),
        ("trace_id:t level:error", True),
        ("trace_id:t OR build_id:b", True),
        ("trace_id:t OR timeout", False),
        ("-trace_id:t", False),
        ("trace_id:t*", False),
        ("service:api", False),
        ("", False),
    ],
)
def test_only_queries_pinned_to_an_id_search_all_time_by_default(q, wide):
    assert requires_id(parse(q)) is wide


def test_several_queries_share_one_statement_under_their_own_prefixes():
    params: dict = {}
    first = to_sql(parse("service:a"), params, prefix="s0_")
    second = to_sql(parse("service:b"), params, prefix="s1_")
    assert (first, second) == ("(service = {s0_p0:String})", "(service = {s1_p0:String})")
    assert params == {"s0_p0": "a", "s1_p0": "b"}
