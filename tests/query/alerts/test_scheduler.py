"""The evaluator over the real engine: pending during `for`, firing, resolved; states kept in
ClickHouse so a restart neither re-notifies nor forgets to resolve; one evaluator per store;
/metrics accepted by promtool."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import pytest
from flightlog.query.alerts import metrics as alert_metrics
from flightlog.query.alerts import state as state_mod
from flightlog.query.alerts.notify.dispatcher import Dispatcher
from flightlog.query.alerts.registry import RuleRegistry, StoredRule
from flightlog.query.alerts.rules import parse_rule, parse_rules_file
from flightlog.query.alerts.scheduler import Evaluator, try_lease
from flightlog.query.alerts.state import FIRING, INACTIVE, PENDING, RESOLVED, advance

from tests.query.alerts.conftest import lines


def test_the_state_machine_goes_pending_then_firing_then_resolved():
    fp, labels = "f", {"host": "a"}
    c = advance(None, fp, labels, True, 5, now_ms=0, for_ms=60_000, repeat_ms=0)
    assert (c.after.state, c.notify) == (PENDING, None)
    c = advance(c.after, fp, labels, True, 6, now_ms=30_000, for_ms=60_000, repeat_ms=0)
    assert (c.after.state, c.notify) == (PENDING, None)
    c = advance(c.after, fp, labels, True, 7, now_ms=60_000, for_ms=60_000, repeat_ms=0)
    assert (c.after.state, c.notify, c.after.fired_at_ms) == (FIRING, "firing", 60_000)
    c = advance(c.after, fp, labels, True, 7, now_ms=120_000, for_ms=60_000, repeat_ms=0)
    assert (c.after.state, c.notify) == (FIRING, None)
    c = advance(c.after, fp, labels, False, 0, now_ms=180_000, for_ms=60_000, repeat_ms=0)
    assert (c.after.state, c.notify, c.after.resolved_at_ms) == (RESOLVED, "resolved", 180_000)


def test_a_pending_group_that_stops_matching_goes_back_to_inactive_without_a_message():
    c = advance(None, "f", {}, True, 5, now_ms=0, for_ms=60_000, repeat_ms=0)
    c = advance(c.after, "f", {}, False, 0, now_ms=10_000, for_ms=60_000, repeat_ms=0)
    assert (c.after.state, c.notify) == (INACTIVE, None)


def test_a_firing_group_is_notified_again_after_the_repeat_interval():
    c = advance(None, "f", {}, True, 5, now_ms=0, for_ms=0, repeat_ms=100_000)
    assert c.notify == "firing"
    c = advance(c.after, "f", {}, True, 5, now_ms=50_000, for_ms=0, repeat_ms=100_000)
    assert c.notify is None
    c = advance(c.after, "f", {}, True, 5, now_ms=100_000, for_ms=0, repeat_ms=100_000)
    assert c.notify == "firing"


async def _run_blocking(fn, *args):
    return await asyncio.to_thread(fn, *args)


async def _evaluator(store, rules_yaml: str, **kwargs) -> tuple[Evaluator, Dispatcher]:
    dispatcher = Dispatcher(backoff_s=0.05, timeout_s=2.0)
    await dispatcher.start()
    registry = RuleRegistry(store, parse_rules_file(rules_yaml))
    evaluator = Evaluator(store, registry, dispatcher, _run_blocking, public_url="http://flightlog.test", **kwargs)
    evaluator.states = await asyncio.to_thread(evaluator.states_store.load_active)
    return evaluator, dispatcher


def _rule(evaluator) -> StoredRule:
    return evaluator.registry.all()[0]


RULE = """
rules:
  - name: checkout errors
    query: level:>=error service:checkout
    window: 5m
    condition: count > 2
    group_by: [host]
    for: 1m
    annotations:
      summary: "{{{{ value }}}} errors on {{{{ labels.host }}}}"
    channels:
      - type: webhook
        url: {url}/hook
"""


async def test_a_group_fires_after_for_and_resolves_when_its_lines_leave_the_window(store, receiver):
    evaluator, dispatcher = await _evaluator(store, RULE.format(url=receiver.url))
    try:
        lines(store, 5, service="checkout", host="web-1", level="error")
        stored = _rule(evaluator)
        t0 = int(time.time() * 1000)
        [c] = await evaluator.evaluate_rule(stored, t0)
        assert c.after.state == PENDING
        [c] = await evaluator.evaluate_rule(stored, t0 + 61_000)
        assert c.after.state == FIRING
        await receiver.wait_for(lambda r: len(r) == 1)
        body = receiver.received[0].json()
        assert body["status"] == "firing" and body["version"] == "4"
        assert body["alerts"][0]["labels"]["host"] == "web-1"
        assert body["commonAnnotations"]["summary"] == "5 errors on web-1"
        # 6 minutes later the lines are out of the 5-minute window: resolved
        [c] = await evaluator.evaluate_rule(stored, t0 + 61_000 + 6 * 60_000)
        assert c.after.state == RESOLVED
        await receiver.wait_for(lambda r: len(r) == 2)
        assert receiver.received[1].json()["status"] == "resolved"
        history = state_mod.history(store, "default", "checkout errors")
        assert [h["state"] for h in history] == [RESOLVED, FIRING, PENDING]
    finally:
        await dispatcher.stop()


async def test_a_restart_while_firing_sends_no_duplicate_and_still_resolves(store, receiver):
    evaluator, dispatcher = await _evaluator(store, RULE.format(url=receiver.url).replace("for: 1m", "for: 0s"))
    lines(store, 5, service="checkout", host="web-1", level="error")
    t0 = int(time.time() * 1000)
    try:
        [c] = await evaluator.evaluate_rule(_rule(evaluator), t0)
        assert c.notify == "firing"
        await receiver.wait_for(lambda r: len(r) == 1)
    finally:
        await dispatcher.stop()

    # a new process over the same store: it loads what is firing
    evaluator, dispatcher = await _evaluator(store, RULE.format(url=receiver.url).replace("for: 0s", "for: 0s"))
    try:
        assert [g.state for g in evaluator.states[("default", "checkout errors")].values()] == [FIRING]
        [c] = await evaluator.evaluate_rule(_rule(evaluator), t0 + 60_000)
        assert (c.after.state, c.notify) == (FIRING, None)
        [c] = await evaluator.evaluate_rule(_rule(evaluator), t0 + 7 * 60_000)
        assert c.notify == "resolved"
        await receiver.wait_for(lambda r: len(r) == 2)
        assert [r.json()["status"] for r in receiver.received] == ["firing", "resolved"]
    finally:
        await dispatcher.stop()


async def test_a_silenced_group_changes_state_but_sends_nothing(store, receiver):
    from flightlog.query.alerts import silences

    evaluator, dispatcher = await _evaluator(store, RULE.format(url=receiver.url).replace("for: 1m", "for: 0s"))
    try:
        silences.create(store, "default", silences.parse_silence({"matchers": {"host": "web-1"}, "for": "1h"}), "test")
        evaluator.silences = silences.active(store)
        lines(store, 5, service="checkout", host="web-1", level="error")
        lines(store, 5, service="checkout", host="web-2", level="error")
        changes = await evaluator.evaluate_rule(_rule(evaluator), int(time.time() * 1000))
        assert sorted(c.after.state for c in changes) == [FIRING, FIRING]
        await receiver.wait_for(lambda r: len(r) == 1)
        await asyncio.sleep(0.3)
        assert [r.json()["groupLabels"]["host"] for r in receiver.received] == ["web-2"]
    finally:
        await dispatcher.stop()


async def test_a_failing_query_is_counted_and_shown_not_silent(store, receiver):
    rules = "rules:\n  - name: bad sql\n    kind: sql\n    condition: value > 0\n    query: SELECT nope AS value FROM logs\n"
    evaluator, dispatcher = await _evaluator(store, rules)
    try:
        await evaluator.evaluate_rule(_rule(evaluator))
        status = evaluator.status[("default", "bad sql")]
        assert status.failures == 1 and "nope" in status.last_error
        text = alert_metrics.render(evaluator)
        assert 'flightlog_rule_evaluation_failures_total{tenant="default",rule="bad sql"} 1' in text
    finally:
        await dispatcher.stop()


def test_only_one_of_two_nodes_holds_the_evaluator_lease(store):
    now = int(time.time() * 1000)
    assert try_lease(store, "node-a", now, lease_s=30, settle_s=0.2)
    assert not try_lease(store, "node-b", now + 1000, lease_s=30, settle_s=0.2)
    assert try_lease(store, "node-a", now + 2000, lease_s=30, settle_s=0.2)  # renewal
    # node-a stops renewing: once its lease has run out, node-b takes over
    assert try_lease(store, "node-b", now + 33_000, lease_s=30, settle_s=0.2)
    assert not try_lease(store, "node-a", now + 34_000, lease_s=30, settle_s=0.2)


async def test_two_evaluators_racing_for_the_lease_never_both_win(store):
    """Two processes (no shared lock: the claim itself, as across nodes) claiming at once."""
    from flightlog.query.alerts.scheduler import _try_lease

    now = int(time.time() * 1000)
    for round_ in range(3):
        at = now + round_ * 100_000
        won = await asyncio.gather(
            asyncio.to_thread(_try_lease, store, f"a{round_}", at, 30, 0.5),
            asyncio.to_thread(_try_lease, store, f"b{round_}", at, 30, 0.5),
        )
        assert sum(won) == 1, won


async def test_metrics_carry_each_groups_value_and_promtool_accepts_them(store, receiver):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs Debian's prometheus package (promtool)")
    rules = """
rules:
  - name: by host
    query: level:error
    condition: count > 1
    group_by: [host, attrs.http.status]
  - name: sql rule
    kind: sql
    condition: value > 0
    query: "SELECT host AS rule, count() AS value FROM logs GROUP BY host"
"""
    evaluator, dispatcher = await _evaluator(store, rules)
    try:
        lines(store, 3, host='web "1"\\n', level="error", attrs={"http.status": "502"})
        for stored in evaluator.registry.all():
            await evaluator.evaluate_rule(stored)
        text = alert_metrics.render(evaluator)
        assert ('flightlog_rule_value{tenant="default",rule="by host",attrs_http_status="502",'
                'host="web \\"1\\"\\\\n"} 3.0') in text
        assert 'group_rule="web \\"1\\"\\\\n"' in text  # a label column named `rule` does not clash
        assert 'flightlog_rule_firing{tenant="default",rule="by host"} 1' in text
        checked = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
        assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    finally:
        await dispatcher.stop()


def test_a_reload_that_raced_a_change_keeps_the_change(store):
    registry = RuleRegistry(store)
    registry.reload()
    real_query = store.query

    def slow_query(sql, *args, **kwargs):
        result = real_query(sql, *args, **kwargs)
        if "FROM alert_rules" in sql:  # the rule is saved after the reload read the table
            registry.put("default", parse_rule({"name": "new", "query": "level:error"}), "test", create=True)
        return result

    store.query = slow_query
    try:
        registry.reload()
    finally:
        store.query = real_query
    assert [r.rule.name for r in registry.all()] == ["new"]


def test_rules_are_spread_over_their_interval_at_fixed_phases():
    from flightlog.query.alerts.scheduler import phase

    phases = [phase(("default", f"rule {i}"), 30) for i in range(200)]
    assert all(0 <= p < 30 for p in phases)
    assert phases == [phase(("default", f"rule {i}"), 30) for i in range(200)]  # the same after a restart
    assert max(sum(1 for p in phases if s <= p < s + 3) for s in range(0, 30, 3)) < 200 / 10 * 2
