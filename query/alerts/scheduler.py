"""The evaluator: runs each rule on its interval, advances its groups' states, sends notifications.

It runs inside a `serve` or `query` process. With several `query` nodes on one ClickHouse, a
lease row in `alert_leases` makes exactly one of them the evaluator at a time; the others stand
by and take over once the holder stops renewing (LEASE_S). State lives in ClickHouse
(flightlog.query.alerts.state), so the node that takes over, or this one after a restart, knows
what is already firing: it neither re-notifies it nor forgets to resolve it.

Store calls run in a thread (`run_blocking`); notifications go to the dispatcher's queues and
never wait for delivery.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from flightlog.query.alerts import silences as silences_mod
from flightlog.query.alerts.evaluate import EvaluationError, Sample, evaluate, sample_lines
from flightlog.query.alerts.notify.alert import Alert
from flightlog.query.alerts.notify.alertmanager import AlertmanagerSender
from flightlog.query.alerts.notify.apprise_channel import AppriseSender
from flightlog.query.alerts.notify.dispatcher import Delivery, Dispatcher, Sender
from flightlog.query.alerts.notify.slack import SlackSender
from flightlog.query.alerts.notify.webhook import WebhookSender
from flightlog.query.alerts.registry import RuleRegistry, StoredRule
from flightlog.query.alerts.rules import Channel, Rule, render_template
from flightlog.query.alerts.state import (
    FIRING,
    PENDING,
    RESOLVED,
    Change,
    GroupState,
    StateStore,
    advance,
    ms_datetime,
)
from flightlog.query.timefmt import NS_PER_S
from flightlog.schema.engine_errors import log_engine_error, public_reason
from flightlog.schema.store import Store, StoreError

log = logging.getLogger("flightlog.alerts")

TICK_S = 1.0
RELOAD_S = 5.0
LEASE_S = 30.0
LEASE_RENEW_S = 5.0  # the holder renews this often; a standby checks every tick
LEASE_NAME = "evaluator"
LEASE_SETTLE_S = 1.0
EVALUATIONS_AT_ONCE = 2

RunBlocking = Callable[..., Awaitable[Any]]


@dataclass
class RuleStatus:
    """What the alerts page and /metrics say about a rule."""

    last_evaluation_ms: int = 0
    last_duration_s: float = 0.0
    last_error: str = ""
    evaluations: int = 0
    failures: int = 0
    duration_sum_s: float = 0.0
    values: dict[str, tuple[dict[str, str], float]] | None = None  # fingerprint → (labels, value)


def phase(key: tuple[str, str], interval_s: int) -> float:
    """A rule's fixed offset into its interval (the same on every node and after a restart)."""
    return zlib.crc32("\0".join(key).encode()) % (interval_s * 1000) / 1000


def node_id() -> str:
    """This evaluator's name in the lease: host, process, and a token (two apps in one process,
    or a restarted one, are different evaluators)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def release_lease(store: Store, owner: str) -> None:
    """Give the lease up (on a clean stop), so a standby or the restarted process takes over at
    once instead of after LEASE_S."""
    rows = store.query(
        "SELECT argMax(owner, version) FROM alert_leases WHERE name = {n:String} HAVING count() > 0",
        {"n": LEASE_NAME},
    ).rows
    if rows and rows[0][0] == owner:
        store.insert_rows("alert_leases", [{"name": LEASE_NAME, "owner": "", "until": ms_datetime(0),
                                            "version": time.time_ns()}])


def try_lease(store: Store, owner: str, now_ms: int, lease_s: float = LEASE_S, settle_s: float = LEASE_SETTLE_S) -> bool:
    """Hold or take the evaluator lease. Blocking.

    ClickHouse has no compare-and-set, so a node that takes the lease writes its claim, waits
    `settle_s` for any rival's claim to land, and keeps the lease only if the newest claim is its
    own: a rival that read the lease before our claim wrote its own claim within that time.
    """

    with _LEASE_LOCK:  # evaluators of one process claim in turn; across processes the settle time does
        return _try_lease(store, owner, now_ms, lease_s, settle_s)


_LEASE_LOCK = threading.Lock()


def _try_lease(store: Store, owner: str, now_ms: int, lease_s: float, settle_s: float) -> bool:
    def holder() -> tuple[str, int] | None:
        rows = store.query(
            "SELECT argMax(owner, version), toUnixTimestamp64Milli(argMax(until, version)) FROM alert_leases "
            "WHERE name = {n:String} HAVING count() > 0",
            {"n": LEASE_NAME},
        ).rows
        return (rows[0][0], int(rows[0][1])) if rows else None

    current = holder()
    if current is not None and current[0] != owner and current[1] > now_ms:
        return False
    until = now_ms + int(lease_s * 1000)
    store.insert_rows(
        "alert_leases",
        [{"name": LEASE_NAME, "owner": owner, "until": ms_datetime(until), "version": time.time_ns()}],
    )
    if current is not None and current[0] == owner:
        return True
    if settle_s > 0:
        time.sleep(settle_s)
    current = holder()
    return current is not None and current[0] == owner


class Evaluator:
    def __init__(
        self,
        store: Store,
        registry: RuleRegistry,
        dispatcher: Dispatcher,
        run_blocking: RunBlocking,
        *,
        public_url: str,
        alertmanager_url: str = "",
        owner: str | None = None,
        lease_settle_s: float | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.dispatcher = dispatcher
        self.run_blocking = run_blocking
        self.public_url = public_url.rstrip("/")
        self.alertmanager = AlertmanagerSender(alertmanager_url) if alertmanager_url else None
        self.owner = owner or node_id()
        # one process on an embedded store has no rival to wait for
        self.lease_settle_s = lease_settle_s if lease_settle_s is not None else (
            0.0 if getattr(store, "kind", "") == "embedded" else LEASE_SETTLE_S)
        self.states_store = StateStore(store)
        self.states: dict[tuple[str, str], dict[str, GroupState]] = {}
        self.status: dict[tuple[str, str], RuleStatus] = {}
        self.next_due: dict[tuple[str, str], float] = {}
        self.silences: list[silences_mod.Silence] = []
        self.is_leader = False
        self._running: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task] = set()
        self._semaphore = asyncio.Semaphore(EVALUATIONS_AT_ONCE)
        self._loaded = False
        self._last_reload = 0.0
        self._lease_renewed = 0.0
        self._task: asyncio.Task | None = None
        self.wake = asyncio.Event()

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="alert evaluator")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.run_blocking(self.states_store.flush_values)
            if self.is_leader:
                await self.run_blocking(release_lease, self.store, self.owner)
        except StoreError as exc:
            log.warning("alert evaluator: the last values or the lease release were not written: %s", exc)

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except StoreError as exc:
                log.warning("alert evaluator: the store did not answer: %s", exc)
            except Exception:
                log.exception("alert evaluator: unexpected error; carrying on")
            self.wake.clear()
            wait = TICK_S
            if self.is_leader and self.next_due:
                wait = min(TICK_S, max(0.1, min(self.next_due.values()) - time.monotonic()))
            try:
                async with asyncio.timeout(wait):
                    await self.wake.wait()
            except TimeoutError:
                pass

    async def tick(self) -> None:
        """One round: refresh rules and silences, hold the lease, start the rules that are due."""
        now = time.monotonic()
        if not self._loaded or now - self._last_reload >= RELOAD_S:
            await self.run_blocking(self.registry.reload)
            self.silences = await self.run_blocking(silences_mod.active, self.store)
            self._last_reload = now
        await self.run_blocking(self.states_store.flush_values)
        now_ms = int(time.time() * 1000)
        if not self.is_leader or now - self._lease_renewed >= LEASE_RENEW_S:
            self.is_leader = await self.run_blocking(try_lease, self.store, self.owner, now_ms, LEASE_S,
                                                     self.lease_settle_s)
            self._lease_renewed = now
        if not self.is_leader:
            self._loaded = False  # whoever holds the lease changes states; reload them on takeover
            return
        if not self._loaded:
            self.states = await self.run_blocking(self.states_store.load_active)
            self._loaded = True
        rules = self.registry.all()
        keys = {r.key for r in rules}
        for key in [k for k in self.next_due if k not in keys]:
            self.next_due.pop(key, None)
            self.status.pop(key, None)
            if self.states.pop(key, None):
                await self.run_blocking(self.states_store.forget_rule, *key)
        for stored in rules:
            if not stored.rule.enabled or stored.key in self._running:
                continue
            if stored.key not in self.next_due:
                # spread the rules over their interval instead of running them all at once: a
                # rule then never waits behind hundreds of others that fell due in the same tick
                self.next_due[stored.key] = now + phase(stored.key, stored.rule.interval_s)
            due = self.next_due[stored.key]
            if due <= now:
                # keep the rule's phase: the next run is an interval after this one was due
                following = due + stored.rule.interval_s
                self.next_due[stored.key] = following if following > now else now + stored.rule.interval_s
                self._running.add(stored.key)
                task = asyncio.create_task(self._evaluate_guarded(stored))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def reschedule(self, tenant: str, name: str) -> None:
        """A rule changed through the API: evaluate it on the next tick."""
        if name:
            self.next_due[(tenant, name)] = 0.0
        self._last_reload = 0.0
        self.wake.set()

    async def _evaluate_guarded(self, stored: StoredRule) -> None:
        try:
            async with self._semaphore:
                await self.evaluate_rule(stored)
        except Exception:
            log.exception("alert rule %s/%s: evaluation crashed", stored.tenant, stored.rule.name)
        finally:
            self._running.discard(stored.key)

    # --- one evaluation -----------------------------------------------------------------------

    async def evaluate_rule(self, stored: StoredRule, now_ms: int | None = None) -> list[Change]:
        tenant, rule = stored.tenant, stored.rule
        status = self.status.setdefault(stored.key, RuleStatus())
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        started = time.perf_counter()
        try:
            samples = await self.run_blocking(evaluate, self.store, tenant, rule, now_ms * 1_000_000)
        except (EvaluationError, StoreError) as exc:
            status.failures += 1
            status.evaluations += 1
            status.last_error = str(exc)
            status.last_evaluation_ms = now_ms
            status.last_duration_s = time.perf_counter() - started
            status.duration_sum_s += status.last_duration_s
            self._record_status(stored.key, status)
            return []
        status.last_duration_s = time.perf_counter() - started
        status.duration_sum_s += status.last_duration_s
        status.evaluations += 1
        status.last_error = ""
        status.last_evaluation_ms = now_ms
        status.values = {s.fingerprint: (s.labels, s.value) for s in samples}

        known = self.states.get(stored.key, {})
        seen: dict[str, Sample] = {s.fingerprint: s for s in samples}
        changes: list[Change] = []
        for fp, sample in seen.items():
            changes.append(advance(known.get(fp), fp, sample.labels, sample.active, sample.value, now_ms,
                                   rule.for_s * 1000, rule.repeat_s * 1000))
        for fp, prev in known.items():
            if fp not in seen:  # the group has no lines in the window any more: its value is 0
                changes.append(advance(prev, fp, prev.labels, False, 0.0, now_ms, rule.for_s * 1000,
                                       rule.repeat_s * 1000))
        try:
            await self.run_blocking(self._persist, tenant, rule.name, changes, samples, now_ms)
        except StoreError as exc:
            # notify anyway: a missed alert costs more than a repeat after a restart
            status.failures += 1
            log_engine_error(f"alert rule {tenant}/{rule.name}: saving its state", exc)
            status.last_error = f"the state could not be saved: {public_reason(exc)}"
        self.states[stored.key] = {c.after.fingerprint: c.after for c in changes if c.after.state in (PENDING, FIRING)}
        self._record_status(stored.key, status)
        await self._notify(stored, changes, seen, now_ms)
        return changes

    def _persist(self, tenant: str, rule: str, changes: list[Change], samples: list[Sample], now_ms: int) -> None:
        self.states_store.save(tenant, rule, changes, now_ms)
        self.states_store.record_values(tenant, rule, [(s.fingerprint, s.labels, s.value) for s in samples], now_ms)

    def _record_status(self, key: tuple[str, str], status: RuleStatus) -> None:
        groups = self.states.get(key, {})
        failure = self.dispatcher.rule_errors.get(key)
        self.states_store.record_status(key[0], key[1], {
            "last_evaluation": ms_datetime(status.last_evaluation_ms),
            "duration_ms": status.last_duration_s * 1000,
            "error": status.last_error,
            "notify_error": f"{failure[0]}: {failure[1]}" if failure else "",
            "evaluations": status.evaluations,
            "failures": status.failures,
            "firing": sum(1 for g in groups.values() if g.state == FIRING),
            "pending": sum(1 for g in groups.values() if g.state == PENDING),
        })

    # --- notifications ------------------------------------------------------------------------

    def silenced(self, tenant: str, rule: str, labels: dict[str, str]) -> bool:
        now_ms = int(time.time() * 1000)
        return any(s.tenant == tenant and s.until_ms > now_ms and s.matches(rule, labels) for s in self.silences)

    def build_alert(self, stored: StoredRule, state: GroupState, status: str, sample: Sample | None,
                    lines: list[dict[str, Any]], now_ms: int, test: bool = False) -> Alert:
        rule = stored.rule
        labels = {**state.labels, **rule.labels, "alertname": rule.name, "tenant": stored.tenant}
        links = {name: self.public_url + path for name, path in (sample.links if sample else {}).items()}
        if not links:
            links = {"lines": self.public_url + f"/alerts?rule={_quote(rule.name)}"}
        value = sample.value if sample is not None else state.value
        shown = int(value) if float(value).is_integer() else value  # "23 errors", not "23.0 errors"
        context = {"labels": labels, "value": shown, "rule": rule.name, "group": state.labels, "links": links,
                   "state": status, **({"detail": sample.detail} if sample else {"detail": {}})}
        annotations = {name: render_template(text, context) for name, text in rule.annotations.items()}
        if sample is not None:
            for name, text in sample.detail.items():
                annotations.setdefault(name, text)
        return Alert(
            tenant=stored.tenant,
            rule=rule.name,
            status=status,
            labels=labels,
            group_labels=state.labels,
            annotations=annotations,
            value=value,
            starts_at_ms=state.fired_at_ms or state.active_since_ms or now_ms,
            ends_at_ms=state.resolved_at_ms if status == "resolved" else 0,
            generator_url=links.get("first_error") or links["lines"],
            fingerprint=state.fingerprint,
            links=links,
            sample_lines=lines,
            condition=rule.condition if rule.kind in ("search", "sql") else "",
            test=test,
        )

    def senders(self, stored: StoredRule) -> list[Sender]:
        return [channel_sender(c, self.public_url) for c in stored.rule.channels]

    async def _notify(self, stored: StoredRule, changes: list[Change], seen: dict[str, Sample], now_ms: int) -> None:
        rule = stored.rule
        am_batch: list[Alert] = []
        for change in changes:
            after = change.after
            if after.state not in (FIRING, RESOLVED) or (after.state == RESOLVED and change.notify is None):
                continue
            if self.silenced(stored.tenant, rule.name, {**after.labels, **rule.labels}):
                continue
            status = "firing" if after.state == FIRING else "resolved"
            sample = seen.get(after.fingerprint)
            lines: list[dict[str, Any]] = []
            if change.notify == "firing" and sample is not None and rule.kind == "search" and rule.channels:
                lines = await self.run_blocking(sample_lines, self.store, stored.tenant, rule, sample, now_ms * 1_000_000)
            alert = self.build_alert(stored, after, status, sample, lines, now_ms)
            am_batch.append(alert)  # Alertmanager hears every firing alert on every evaluation
            if change.notify is not None:
                for sender in self.senders(stored):
                    self.dispatcher.submit(Delivery(sender, alert, stored.tenant, rule.name))
        if self.alertmanager is not None and am_batch:
            # endsAt a few intervals ahead: Alertmanager resolves it itself if we stop re-sending
            ends = now_ms + max(4 * rule.interval_s, 180) * 1000
            self.dispatcher.submit(Delivery(self.alertmanager, (am_batch, ends), stored.tenant, rule.name))

    async def send_test(self, stored: StoredRule) -> list[dict[str, Any]]:
        """Send a test notification to each of the rule's channels (and Alertmanager), now;
        → [{"channel": …, "ok": bool, "error": …}]."""
        now_ms = int(time.time() * 1000)
        state = GroupState("test", {}, FIRING, 0.0, now_ms, now_ms)
        alert = self.build_alert(stored, state, "firing", None, [], now_ms, test=True)
        results = []
        targets: list[tuple[Sender, Any, dict[str, Any]]] = [
            (channel_sender(c, self.public_url), alert, c.public()) for c in stored.rule.channels
        ]
        if self.alertmanager is not None:
            test_alert = Alert(**{**alert.__dict__, "labels": {**alert.labels, "test": "true"}})
            resolved = now_ms + 60_000
            targets.append((self.alertmanager, ([test_alert], resolved), {"type": "alertmanager", "id": "alertmanager"}))
        sends = [self.dispatcher.send_now(sender, item) for sender, item, _ in targets]
        for (_, _, public), error in zip(targets, await asyncio.gather(*sends)):
            results.append({"channel": public, "ok": error is None, "error": error or ""})
        return results


def channel_sender(channel: Channel, public_url: str) -> Sender:
    if channel.type == "slack":
        return SlackSender(channel.url, channel.key)
    if channel.type == "webhook":
        return WebhookSender(channel.url, channel.secret, channel.key, public_url)
    return AppriseSender(channel.url, channel.key)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def preview(store: Store, tenant: str, rule: Rule, now_ns: int) -> list[dict[str, Any]]:
    """Run a rule once without saving anything: each group, its value, whether it would fire now
    (ignoring `for`), and up to five sample lines of the firing ones. Blocking."""
    samples = evaluate(store, tenant, rule, now_ns)
    out = []
    for sample in samples:
        lines = sample_lines(store, tenant, rule, sample, now_ns) if sample.active else []
        out.append({"labels": sample.labels, "value": sample.value, "would_fire": sample.active,
                    "links": sample.links, "detail": sample.detail, "lines": lines})
    out.sort(key=lambda g: (not g["would_fire"], -g["value"]))
    return out


__all__ = ["Evaluator", "RuleStatus", "preview", "try_lease", "NS_PER_S"]
