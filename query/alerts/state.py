"""Alert states per group: inactive → pending (during `for`) → firing → resolved, kept in ClickHouse.

`advance` is the pure state machine; `StateStore` reads and writes the `alert_state` and
`alert_history` tables (migration 0060), tenant-scoped. A restart loads what was pending or
firing, with when it was last notified, so it neither re-notifies what already fired nor
forgets to resolve it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from flightlog.schema.store import Store

INACTIVE, PENDING, FIRING, RESOLVED = "inactive", "pending", "firing", "resolved"
HISTORY_DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class GroupState:
    fingerprint: str
    labels: dict[str, str]
    state: str = INACTIVE
    value: float = 0.0
    active_since_ms: int = 0
    fired_at_ms: int = 0
    resolved_at_ms: int = 0
    last_notified_ms: int = 0


@dataclass(frozen=True)
class Change:
    """What one evaluation did to one group; `notify` is "firing", "resolved" or None."""

    before: GroupState | None
    after: GroupState
    notify: str | None = None

    @property
    def changed(self) -> bool:
        return self.before is None or self.before.state != self.after.state


def advance(
    before: GroupState | None,
    fingerprint: str,
    labels: dict[str, str],
    active: bool,
    value: float,
    now_ms: int,
    for_ms: int,
    repeat_ms: int,
) -> Change:
    """One group's next state given whether its condition holds now."""
    prev = before or GroupState(fingerprint, labels)
    if active:
        if prev.state in (INACTIVE, RESOLVED):
            since = now_ms
            state = FIRING if for_ms <= 0 else PENDING
        else:
            since = prev.active_since_ms
            state = FIRING if prev.state == FIRING or now_ms - since >= for_ms else PENDING
        after = replace(prev, labels=labels, state=state, value=value, active_since_ms=since)
        if state == FIRING and prev.state != FIRING:
            after = replace(after, fired_at_ms=now_ms, resolved_at_ms=0, last_notified_ms=now_ms)
            return Change(before, after, "firing")
        if state == FIRING and repeat_ms > 0 and now_ms - prev.last_notified_ms >= repeat_ms:
            return Change(before, replace(after, last_notified_ms=now_ms), "firing")
        return Change(before, after)
    if prev.state == FIRING:
        after = replace(prev, state=RESOLVED, value=value, resolved_at_ms=now_ms, last_notified_ms=now_ms)
        return Change(before, after, "resolved")
    if prev.state == PENDING:
        return Change(before, replace(prev, state=INACTIVE, value=value, active_since_ms=0))
    return Change(before, replace(prev, value=value))


def ms_datetime(ms: int) -> str:
    """Milliseconds since the epoch as the text a DateTime64(3) column reads."""
    return dt.datetime.fromtimestamp(ms // 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S") + f".{ms % 1000:03d}"


_ms_text = ms_datetime


class StateStore:
    """Reads and writes alert states and history for the evaluator."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # values are written in one insert per evaluator tick, not one per rule evaluation: 200
        # rules every 30 s would otherwise make ~7 small parts a second
        self._values: list[dict[str, Any]] = []
        self._statuses: dict[tuple[str, str], dict[str, Any]] = {}
        self._values_lock = threading.Lock()

    def load_active(self) -> dict[tuple[str, str], dict[str, GroupState]]:
        """(tenant, rule) → fingerprint → state, for groups now pending or firing."""
        result = self.store.query(
            "SELECT tenant, rule, fingerprint, labels, state, value, toUnixTimestamp64Milli(active_since), "
            "toUnixTimestamp64Milli(fired_at), toUnixTimestamp64Milli(resolved_at), "
            "toUnixTimestamp64Milli(last_notified) FROM alert_state FINAL WHERE state IN ('pending', 'firing')"
        )
        states: dict[tuple[str, str], dict[str, GroupState]] = {}
        for tenant, rule, fp, labels, state, value, since, fired, resolved, notified in result.rows:
            states.setdefault((tenant, rule), {})[fp] = GroupState(
                fp, dict(labels), state, float(value), int(since), int(fired), int(resolved), int(notified)
            )
        return states

    def save(self, tenant: str, rule: str, changes: Iterable[Change], now_ms: int) -> None:
        """Persist the groups whose state or notification time changed, and their history."""
        rows, history = [], []
        version = time.time_ns()
        for change in changes:
            after, before = change.after, change.before
            if before is None and after.state == INACTIVE:
                continue  # a group that matched nothing and never did: nothing to remember
            if not change.changed and (before is None or before.last_notified_ms == after.last_notified_ms):
                continue
            rows.append(
                {
                    "tenant": tenant,
                    "rule": rule,
                    "fingerprint": after.fingerprint,
                    "labels": after.labels,
                    "state": after.state,
                    "value": after.value,
                    "active_since": _ms_text(after.active_since_ms),
                    "fired_at": _ms_text(after.fired_at_ms),
                    "resolved_at": _ms_text(after.resolved_at_ms),
                    "last_notified": _ms_text(after.last_notified_ms),
                    "version": version,
                }
            )
            if change.changed:
                history.append(
                    {
                        "ts": _ms_text(now_ms),
                        "tenant": tenant,
                        "rule": rule,
                        "fingerprint": after.fingerprint,
                        "labels": after.labels,
                        "state": after.state,
                        "value": after.value,
                    }
                )
        if rows:
            self.store.insert_rows("alert_state", rows)
        if history:
            self.store.insert_rows("alert_history", history)

    def record_values(self, tenant: str, rule: str, samples: Iterable[tuple[str, dict[str, str], float]],
                      now_ms: int) -> None:
        """Queue each group's value for the next `flush_values`."""
        rows = [
            {"ts": _ms_text(now_ms), "tenant": tenant, "rule": rule, "fingerprint": fp, "labels": labels, "value": value}
            for fp, labels, value in samples
        ]
        with self._values_lock:
            self._values.extend(rows)

    def record_status(self, tenant: str, rule: str, status: dict[str, Any]) -> None:
        """Queue a rule's latest status (the newest per rule wins) for the next flush."""
        with self._values_lock:
            self._statuses[(tenant, rule)] = {"tenant": tenant, "rule": rule, **status, "version": time.time_ns()}

    def flush_values(self) -> None:
        """Write the queued values and statuses, one insert each."""
        with self._values_lock:
            rows, self._values = self._values, []
            statuses, self._statuses = list(self._statuses.values()), {}
        if rows:
            self.store.insert_rows("alert_values", rows)
        if statuses:
            self.store.insert_rows("alert_rule_status", statuses)

    def forget_rule(self, tenant: str, rule: str) -> None:
        """A deleted rule's groups stop being active (its history stays)."""
        current = self.store.query(
            "SELECT fingerprint, labels FROM alert_state FINAL WHERE tenant = {t:String} AND rule = {r:String} "
            "AND state IN ('pending', 'firing')",
            {"t": tenant, "r": rule},
        )
        version = time.time_ns()
        rows = [
            {"tenant": tenant, "rule": rule, "fingerprint": fp, "labels": labels, "state": INACTIVE, "value": 0.0,
             "active_since": ms_datetime(0), "fired_at": ms_datetime(0), "resolved_at": ms_datetime(0),
             "last_notified": ms_datetime(0), "version": version}
            for fp, labels in current.rows
        ]
        if rows:
            self.store.insert_rows("alert_state", rows)


def groups(store: Store, tenant: str, rule: str) -> list[dict[str, Any]]:
    """The rule's groups that are pending, firing or were resolved in the last day, for the UI/API."""
    result = store.query(
        "SELECT fingerprint, labels, state, value, toUnixTimestamp64Milli(active_since), "
        "toUnixTimestamp64Milli(fired_at), toUnixTimestamp64Milli(resolved_at) FROM alert_state FINAL "
        "WHERE tenant = {t:String} AND rule = {r:String} AND (state IN ('pending', 'firing') "
        "OR resolved_at > now64(3) - INTERVAL 1 DAY) ORDER BY state = 'firing' DESC, state, fingerprint LIMIT 1000",
        {"t": tenant, "r": rule},
    )
    return [
        {"fingerprint": fp, "labels": dict(labels), "state": state, "value": float(value),
         "active_since_ms": int(since), "fired_at_ms": int(fired), "resolved_at_ms": int(resolved)}
        for fp, labels, state, value, since, fired, resolved in result.rows
    ]


def history(store: Store, tenant: str, rule: str, limit: int = HISTORY_DEFAULT_LIMIT) -> list[dict[str, Any]]:
    result = store.query(
        "SELECT concat(replaceOne(toString(ts), ' ', 'T'), 'Z'), fingerprint, labels, state, value FROM alert_history "
        "WHERE tenant = {t:String} AND rule = {r:String} ORDER BY ts DESC LIMIT {n:UInt32}",
        {"t": tenant, "r": rule, "n": limit},
    )
    return [{"ts": ts, "fingerprint": fp, "labels": dict(labels), "state": state, "value": float(value)}
            for ts, fp, labels, state, value in result.rows]


def values(store: Store, tenant: str, rule: str, since_ms: int, max_groups: int = 10) -> dict[str, Any]:
    """Each group's value over time since `since_ms` (the alerts page's graph): the busiest groups."""
    result = store.query(
        "SELECT fingerprint, any(labels), groupArray((toUnixTimestamp64Milli(ts), value)) FROM ("
        "SELECT * FROM alert_values WHERE tenant = {t:String} AND rule = {r:String} "
        "AND ts >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') ORDER BY ts) "
        "GROUP BY fingerprint ORDER BY max(value) DESC LIMIT {n:UInt32}",
        {"t": tenant, "r": rule, "since": since_ms, "n": max_groups},
    )
    return {fp: {"labels": dict(labels), "points": [(int(t), float(v)) for t, v in points]}
            for fp, labels, points in result.rows}


def rule_statuses(store: Store, tenant: str) -> dict[str, dict[str, Any]]:
    """Each rule's last evaluation as written by whichever node evaluates (for the other nodes)."""
    result = store.query(
        "SELECT rule, toUnixTimestamp64Milli(last_evaluation), duration_ms, error, notify_error, evaluations, "
        "failures, firing, pending FROM alert_rule_status FINAL WHERE tenant = {t:String}",
        {"t": tenant},
    )
    return {
        rule: {"last_evaluation_ms": int(at), "duration_ms": float(ms), "error": error, "notify_error": notify,
               "evaluations": int(n), "failures": int(failed), "firing": int(firing), "pending": int(pending)}
        for rule, at, ms, error, notify, n, failed, firing, pending in result.rows
    }


def active_groups(store: Store, tenant: str) -> list[dict[str, Any]]:
    """The tenant's pending and firing groups, from the store (the same on every node)."""
    result = store.query(
        "SELECT rule, fingerprint, labels, state, value, toUnixTimestamp64Milli(if(fired_at > toDateTime64(0, 3), "
        "fired_at, active_since)) FROM alert_state FINAL WHERE tenant = {t:String} AND state IN ('pending', 'firing') "
        "ORDER BY state = 'firing' DESC, rule, fingerprint LIMIT 10000",
        {"t": tenant},
    )
    return [{"rule": rule, "fingerprint": fp, "labels": dict(labels), "state": state, "value": float(value),
             "since_ms": int(since)} for rule, fp, labels, state, value, since in result.rows]
