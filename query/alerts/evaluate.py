"""Run a rule once: the value of each group now, and whether it meets the condition.

Plain functions over the store (no HTTP): the scheduler, the preview button and the benchmark
call the same `evaluate`. Search rules reuse the search page's parser and WHERE builder
(`match_condition`), so a rule matches exactly what the search page shows for its query; SQL
rules go through the SQL console's guard, limits and audit (`run_audited`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flightlog.query import search as search_mod
from flightlog.query import sql_console
from flightlog.query.alerts.rules import Rule, fingerprint, label_name
from flightlog.query.kinds import KINDS
from flightlog.query.search import match_condition, parse_query
from flightlog.query.timefmt import NS_PER_S, format_ns
from flightlog.query.trails import STATUS_SQL
from flightlog.schema.engine_errors import log_engine_error, public_reason
from flightlog.schema.store import Store, StoreError

MAX_GROUPS = 1000
SAMPLE_LINES = 5
# A rule's query runs with the SQL console's time and memory bounds (the governed limits).
RULE_QUERY_SETTINGS: dict[str, Any] = {
    "max_execution_time": sql_console.MAX_EXECUTION_SECONDS,
    "max_memory_usage": sql_console.MAX_MEMORY_BYTES,
}


class EvaluationError(Exception):
    """The rule could not be evaluated (its query failed or was refused); the rule shows it."""


@dataclass
class Sample:
    """One group's value in one evaluation."""

    labels: dict[str, str]
    value: float
    active: bool
    links: dict[str, str] = field(default_factory=dict)  # name → path on this server
    detail: dict[str, str] = field(default_factory=dict)  # build/deploy: first error line …

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)


def evaluate(store: Store, tenant: str, rule: Rule, now_ns: int) -> list[Sample]:
    """Every group the rule sees now with its value; `active` when the condition holds."""
    try:
        if rule.kind == "search":
            return _search(store, tenant, rule, now_ns)
        if rule.kind == "sql":
            return _sql(store, tenant, rule)
        return _trail(store, tenant, rule, now_ns)
    except StoreError as exc:
        # the engine's text may quote row data: the rule shows its kind, the log has the rest
        log_engine_error(f"alert rule {tenant}/{rule.name}", exc)
        raise EvaluationError(f"the rule's query failed: {public_reason(exc, rule.query)}") from None


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def group_query(rule: Rule, labels: dict[str, str]) -> str:
    """The rule's search narrowed to one group: what the search page shows for the alert."""
    terms = [f"{name}:{_quoted(labels[label_name(name)])}" for name in rule.group_by if label_name(name) in labels]
    query = rule.query.strip()
    if terms and query:
        query = f"({query})"
    return " ".join(([query] if query else []) + terms)


def search_path(query: str, since_ns: int, until_ns: int) -> str:
    return "/search?" + urlencode({"q": query, "from": format_ns(since_ns), "to": format_ns(until_ns)})


def _search(store: Store, tenant: str, rule: Rule, now_ns: int) -> list[Sample]:
    parsed = parse_query(rule.query)
    since = now_ns - rule.window_s * NS_PER_S
    params: dict[str, Any] = {}
    where = match_condition(tenant, parsed, since, now_ns, params)
    condition = rule.parsed_condition()
    if not rule.group_by:
        count = int(store.query(f"SELECT count() FROM logs WHERE {where}", params, settings=RULE_QUERY_SETTINGS).scalar())
        return [Sample({}, float(count), condition.holds(count), {"lines": search_path(rule.query, since, now_ns)})]
    columns = []
    for i, name in enumerate(rule.group_by):
        if name.startswith("attrs."):
            params[f"g_key{i}"] = name[len("attrs."):]
            columns.append(f"attrs[{{g_key{i}:String}}]")
        else:
            columns.append(name)  # one of querylang.FIELDS, checked by the rule model
    select = ", ".join(f"toString({c}) AS g{i}" for i, c in enumerate(columns))
    groups = ", ".join(f"g{i}" for i in range(len(columns)))
    params["max_groups"] = MAX_GROUPS
    result = store.query(
        f"SELECT {select}, count() AS n FROM logs WHERE {where} GROUP BY {groups} ORDER BY n DESC, {groups} "
        "LIMIT {max_groups:UInt32}",
        params,
        settings=RULE_QUERY_SETTINGS,
    )
    samples = []
    for row in result.rows:
        labels = {label_name(f): str(v) for f, v in zip(rule.group_by, row[:-1])}
        count = int(row[-1])
        link = search_path(group_query(rule, labels), since, now_ns)
        samples.append(Sample(labels, float(count), condition.holds(count), {"lines": link}))
    return samples


def _sql(store: Store, tenant: str, rule: Rule) -> list[Sample]:
    try:
        body = sql_console.run_audited(store, tenant, f"alert rule {rule.name}", rule.query)
    except Exception as exc:  # the guard's refusal or the engine's failure, with its reason
        raise EvaluationError(getattr(exc, "message", None) or str(exc)) from None
    columns = body["columns"]
    if "value" not in columns:
        raise EvaluationError(f"the query returns {', '.join(columns) or 'no columns'}; it needs a `value` column")
    at = columns.index("value")
    condition = rule.parsed_condition()
    samples = []
    for row in body["rows"][:MAX_GROUPS]:
        try:
            value = float(row[at]) if row[at] is not None else 0.0
        except (TypeError, ValueError):
            raise EvaluationError(f"value {row[at]!r} is not a number") from None
        labels = {label_name(c): "" if v is None else str(v) for c, v in zip(columns, row) if c != "value"}
        samples.append(Sample(labels, value, condition.holds(value)))
    return samples


def _trail(store: Store, tenant: str, rule: Rule, now_ns: int) -> list[Sample]:
    """Builds or deploys seen in the window that turned `failed` (and, for deploys with a
    `deploy_factor`, those whose error rate after the start exceeds factor × the rate before)."""
    kind = KINDS[rule.kind]
    since = now_ns - rule.window_s * NS_PER_S
    params: dict[str, Any] = {"tenant": tenant, "kind": kind.name, "since": since, "max_groups": MAX_GROUPS}
    id_filter = ""
    if rule.query:
        # the query narrows which ids count (`service:checkout`): ids with a matching line
        where = match_condition(tenant, parse_query(rule.query), since, now_ns, params)
        id_filter = f"AND id IN (SELECT {kind.column} FROM logs WHERE {where} AND {kind.column} != '')"
    result = store.query(
        "SELECT id, toUnixTimestamp64Nano(first), lv['error'] + lv['fatal'] AS errors, status FROM ("
        "SELECT id, min(first_ts) AS first, max(last_ts) AS last, sumMap(levels) AS lv, "
        f"argMaxMerge(last_status) AS st, {STATUS_SQL} AS status "
        "FROM id_summary WHERE tenant = {tenant:String} AND kind = {kind:String} "
        f"{id_filter} GROUP BY id) "
        "WHERE last >= fromUnixTimestamp64Nano({since:Int64}, 'UTC') "
        "ORDER BY first DESC LIMIT {max_groups:UInt32}",
        params,
        settings=RULE_QUERY_SETTINGS,
    )
    samples = []
    for entity_id, _first_ns, errors, status in result.rows:
        # the labels stay the same while the build runs and after it fails: one alert group
        labels = {kind.column: entity_id, "reason": "failed"}
        failed = status == "failed"
        sample = Sample(labels, float(errors), failed, {"lines": f"/{kind.name}s/{entity_id}"}, {"status": status})
        if failed:
            _first_error(store, tenant, kind.name, entity_id, sample)
        samples.append(sample)
    if rule.kind == "deploy" and rule.deploy_factor > 0:
        samples.extend(_deploy_error_rates(store, tenant, rule, now_ns, [(r[0], int(r[1])) for r in result.rows]))
    return samples


def _first_error(store: Store, tenant: str, kind: str, entity_id: str, sample: Sample) -> None:
    result = store.query(
        "SELECT toUnixTimestamp64Nano(ts), seq, service, host, message FROM trail_lines "
        "WHERE tenant = {tenant:String} AND kind = {kind:String} AND id = {id:String} "
        "AND level IN ('error', 'fatal') ORDER BY ts, seq LIMIT 1",
        {"tenant": tenant, "kind": kind, "id": entity_id},
        settings=RULE_QUERY_SETTINGS,
    )
    if result.rows:
        ts_ns, seq, service, host, message = result.rows[0]
        ref = f"{int(ts_ns)}-{int(seq)}"
        sample.detail["first_error"] = f"{service}/{host}: {message}"[:1000]
        sample.links["first_error"] = f"/{kind}s/{entity_id}?at={ref}#L{ref}"


def _deploy_error_rates(
    store: Store, tenant: str, rule: Rule, now_ns: int, deploys: list[tuple[str, int]]
) -> list[Sample]:
    """Per deploy seen in the window: the error lines per minute of its services from its start
    (for up to `deploy_minutes`) against the same services' rate in the `deploy_minutes` before."""
    span = rule.deploy_minutes * 60 * NS_PER_S
    samples = []
    for deploy_id, start in deploys:
        if start < now_ns - rule.window_s * NS_PER_S - span:
            continue
        end = min(start + span, now_ns)
        params = {"tenant": tenant, "id": deploy_id, "start": start, "end": end, "before": start - span}
        result = store.query(
            "WITH services AS (SELECT DISTINCT service FROM id_hosts WHERE tenant = {tenant:String} "
            "AND kind = 'deploy' AND id = {id:String}) "
            "SELECT countIf(ts >= fromUnixTimestamp64Nano({start:Int64}, 'UTC')), "
            "countIf(ts < fromUnixTimestamp64Nano({start:Int64}, 'UTC')) FROM logs "
            "WHERE tenant = {tenant:String} AND level IN ('error', 'fatal') AND service IN services "
            "AND ts >= fromUnixTimestamp64Nano({before:Int64}, 'UTC') AND ts < fromUnixTimestamp64Nano({end:Int64}, 'UTC')",
            params,
            settings=RULE_QUERY_SETTINGS,
        )
        after, before = (int(v) for v in result.rows[0])
        minutes_after = max((end - start) / (60 * NS_PER_S), 1 / 60)
        rate_after = after / minutes_after
        rate_before = before / rule.deploy_minutes
        # with no errors before, any error after counts against a floor of one a minute
        ratio = rate_after / max(rate_before, 1.0)
        labels = {"deploy_id": deploy_id, "reason": "error_rate"}
        samples.append(
            Sample(
                labels,
                round(ratio, 3),
                ratio > rule.deploy_factor,
                {"lines": f"/deploys/{deploy_id}"},
                {"error_rate": f"{rate_after:.1f}/min after vs {rate_before:.1f}/min before"},
            )
        )
    return samples


def sample_lines(store: Store, tenant: str, rule: Rule, sample: Sample, now_ns: int) -> list[dict[str, Any]]:
    """Up to SAMPLE_LINES newest lines of a search rule's group (for Slack and the UI)."""
    if rule.kind != "search":
        return []
    since = now_ns - rule.window_s * NS_PER_S
    parsed = parse_query(group_query(rule, sample.labels))
    try:
        return search_mod.search(store, tenant, parsed, since_ns=since, until_ns=now_ns, limit=SAMPLE_LINES)["lines"]
    except StoreError:
        return []
