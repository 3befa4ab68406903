"""The evaluator on /metrics: evaluation time, failures and firing groups per rule, each group's
current value as `flightlog_rule_value` (so Prometheus and Grafana chart log-derived series),
and notifications by channel and outcome."""

from __future__ import annotations

from collections.abc import Iterable

from flightlog.query.alerts.rules import LABEL_NAME
from flightlog.query.alerts.scheduler import Evaluator
from flightlog.query.alerts.state import FIRING, PENDING

RESERVED = frozenset({"rule", "tenant", "le", "quantile"})


def label_value(text: str) -> str:
    """A label value in the text format: backslash, quote and newline escaped."""
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels_text(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{name}="{label_value(value)}"' for name, value in pairs)
    return "{" + inner + "}" if inner else ""


def _group_label(name: str) -> str:
    if name in RESERVED or name.startswith("__") or not LABEL_NAME.match(name):
        return "group_" + "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return name


def _number(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    return repr(float(value)) if isinstance(value, float) else str(value)


def render(evaluator: Evaluator, tenant: str | None = None) -> str:
    """The evaluator's metrics; only `tenant`'s rules when given (a tenant's read key scraping)."""
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    rules = sorted((key, status) for key, status in evaluator.status.items() if tenant is None or key[0] == tenant)
    keyed = [(labels_text([("tenant", t), ("rule", r)]), status) for (t, r), status in rules]
    family("flightlog_rule_evaluations_total", "counter", "Evaluations of each alert rule.",
           [(labels, s.evaluations) for labels, s in keyed])
    family("flightlog_rule_evaluation_failures_total", "counter", "Evaluations that failed (query error or refusal).",
           [(labels, s.failures) for labels, s in keyed])
    family("flightlog_rule_evaluation_seconds", "gauge", "How long the last evaluation of each rule took.",
           [(labels, float(s.last_duration_s)) for labels, s in keyed])
    family("flightlog_rule_evaluation_seconds_total", "counter", "Time spent evaluating each rule.",
           [(labels, float(s.duration_sum_s)) for labels, s in keyed])
    family("flightlog_rule_last_evaluation_timestamp_seconds", "gauge", "When each rule was last evaluated.",
           [(labels, s.last_evaluation_ms / 1000) for labels, s in keyed])
    firing = []
    pending = []
    for (tenant, rule), _ in rules:
        groups = evaluator.states.get((tenant, rule), {})
        labels = labels_text([("tenant", tenant), ("rule", rule)])
        firing.append((labels, sum(1 for g in groups.values() if g.state == FIRING)))
        pending.append((labels, sum(1 for g in groups.values() if g.state == PENDING)))
    family("flightlog_rule_firing", "gauge", "Groups of each rule now firing.", firing)
    family("flightlog_rule_pending", "gauge", "Groups of each rule now pending (condition met, `for` not yet).", pending)
    values = []
    for (tenant, rule), status in rules:
        for group_labels, value in (status.values or {}).values():
            pairs = [("tenant", tenant), ("rule", rule)] + [(_group_label(k), v) for k, v in sorted(group_labels.items())]
            values.append((labels_text(_unique(pairs)), float(value)))
    family("flightlog_rule_value", "gauge", "Each rule group's value at the last evaluation.", values)
    dispatcher = evaluator.dispatcher
    family("flightlog_alert_notifications_total", "counter", "Notification deliveries by channel and outcome.",
           [(labels_text([("channel", kind), ("outcome", outcome)]), n)
            for (kind, outcome), n in sorted(dispatcher.outcomes.items())])
    family("flightlog_alert_notifications_queued", "gauge", "Notifications waiting to be delivered, by channel.",
           [(labels_text([("channel", kind)]), n) for kind, n in sorted(dispatcher.queued().items())])
    family("flightlog_alert_evaluator_leader", "gauge", "1 on the node that evaluates the rules now.",
           [("", int(evaluator.is_leader))])
    return "\n".join(out) + "\n"


def _unique(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: set[str] = set()
    out = []
    for name, value in pairs:
        if name not in seen:
            seen.add(name)
            out.append((name, value))
    return out
