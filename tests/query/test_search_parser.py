"""The query language, as tables of (input, expected) — no store needed."""

from __future__ import annotations

import pytest
from flightlog.query.search import Filter, QuerySyntaxError, Term, parse_query


@pytest.mark.parametrize(
    "q, filters, terms",
    [
        ("", [], []),
        ("   ", [], []),
        ("timeout", [], [("timeout", False)]),
        ("service:api", [("service", "api")], []),
        ("level:ERROR", [("level", "error")], []),
        (
            'service:api level:error "connection refused" retry',
            [("service", "api"), ("level", "error")],
            [("connection refused", True), ("retry", False)],
        ),
        ('host:"web 1"', [("host", "web 1")], []),
        (
            "build_id:b-1 deploy_id:d.2 trace_id:abc request_id:r/1 span_id:s",
            [("build_id", "b-1"), ("deploy_id", "d.2"), ("trace_id", "abc"), ("request_id", "r/1"), ("span_id", "s")],
            [],
        ),
        (r'"say \"hi\" now"', [], [('say "hi" now', True)]),
        ("foo-bar", [], [("foo-bar", False)]),
        ("service:a:b", [("service", "a:b")], []),
        ('""', [], []),
    ],
)
def test_parser_reads_filters_words_and_phrases(q, filters, terms):
    parsed = parse_query(q)
    assert [(f.field, f.value) for f in parsed.filters] == filters
    assert [(t.text, t.quoted) for t in parsed.terms] == terms


@pytest.mark.parametrize(
    "q, position, words",
    [
        ('foo "bar', 5, "unclosed quote"),
        ('service:"api', 9, "unclosed quote"),
        ("service:", 9, "empty value for service"),
        ("service: api", 9, "empty value for service"),
        ('host:""', 6, "empty value for host"),
        ("colour:red", 1, "unknown field 'colour'"),
        ("level:loud", 7, "level 'loud'"),
        ('foo"bar"', 4, "quote inside a word"),
        ('"a"b', 4, "after a closing quote"),
    ],
)
def test_malformed_queries_name_the_problem_and_its_position(q, position, words):
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(q)
    assert info.value.position == position
    assert words in str(info.value)
    assert f"at position {position}" in str(info.value)


def test_parts_remember_where_they_started():
    parsed = parse_query('level:error  "a b" c')
    assert parsed.filters == [Filter("level", "error", 1)]
    assert parsed.terms == [Term("a b", 14, quoted=True), Term("c", 20)]
