"""Where rules come from: the `alert_rules` table (API and UI) and the `--rules FILE` (read-only).

A file rule wins over nothing: a rule in the table may not take a file rule's name, so a team's
rules in its repository cannot be shadowed from the UI. Every call here blocks on the store;
callers on the event loop run it in the store thread.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from flightlog.query.alerts.rules import Rule, RuleError, RulesFile, parse_rule, parse_rules_file
from flightlog.schema.store import Store

log = logging.getLogger("flightlog.alerts")
MAX_RULES_PER_TENANT = 1000


class RuleNotFound(LookupError):
    pass


class RuleReadOnly(PermissionError):
    """The rule comes from the rules file; change it there."""


class TooManyRules(ValueError):
    pass


@dataclass(frozen=True)
class StoredRule:
    tenant: str
    rule: Rule
    source: str  # "api" | "file"

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.rule.name)

    @property
    def read_only(self) -> bool:
        return self.source == "file"


def load_rules_file(path: str | Path) -> RulesFile:
    """Read and validate the rules file; RuleError names the field (`rules.2.window`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError([{"field": str(path), "reason": f"cannot read the rules file: {exc.strerror or exc}"}]) from None
    return parse_rules_file(text)


class RuleRegistry:
    def __init__(self, store: Store, file_rules: RulesFile | None = None) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._file: dict[tuple[str, str], StoredRule] = {}
        if file_rules is not None:
            for rule in file_rules.rules:
                self._file[(file_rules.tenant, rule.name)] = StoredRule(file_rules.tenant, rule, "file")
        self._api: dict[tuple[str, str], StoredRule] = {}
        self.loaded_at = 0.0
        self.broken: dict[tuple[str, str], str] = {}  # stored rules that no longer validate
        self._recent: dict[tuple[str, str], tuple[float, StoredRule | None]] = {}  # changes made here

    def reload(self) -> None:
        started = time.monotonic()
        result = self.store.query(
            "SELECT tenant, name, argMax(rule, version), argMax(deleted, version) FROM alert_rules "
            "GROUP BY tenant, name"
        )
        rules: dict[tuple[str, str], StoredRule] = {}
        broken = {}
        for tenant, name, text, deleted in result.rows:
            if int(deleted):
                continue
            try:
                rules[(tenant, name)] = StoredRule(tenant, parse_rule(orjson.loads(text)), "api")
            except (RuleError, orjson.JSONDecodeError) as exc:
                broken[(tenant, name)] = str(exc)
                log.warning("alert rule %s/%s in the store is not valid and is skipped: %s", tenant, name, exc)
        with self._lock:
            # a change made here while the query ran may be missing from its answer: keep it
            for key, (at, stored) in list(self._recent.items()):
                if at >= started:
                    if stored is None:
                        rules.pop(key, None)
                    else:
                        rules[key] = stored
                elif at < started - 60:
                    del self._recent[key]
            self._api = rules
            self.broken = broken
            self.loaded_at = time.monotonic()

    def all(self) -> list[StoredRule]:
        with self._lock:
            merged = dict(self._api)
        merged.update(self._file)
        return sorted(merged.values(), key=lambda r: r.key)

    def of_tenant(self, tenant: str) -> list[StoredRule]:
        return [r for r in self.all() if r.tenant == tenant]

    def get(self, tenant: str, name: str) -> StoredRule:
        found = self._file.get((tenant, name))
        if found is None:
            with self._lock:
                found = self._api.get((tenant, name))
        if found is None:
            raise RuleNotFound(f"no alert rule {name!r}")
        return found

    def put(self, tenant: str, rule: Rule, who: str, *, create: bool) -> StoredRule:
        """Create (create=True: refuse an existing name) or replace a rule of the API's."""
        if (tenant, rule.name) in self._file:
            raise RuleReadOnly(f"rule {rule.name!r} comes from the rules file; change it there")
        with self._lock:
            exists = (tenant, rule.name) in self._api
            count = sum(1 for t, _ in self._api if t == tenant)
        if create and exists:
            raise FileExistsError(f"a rule named {rule.name!r} already exists; PUT /api/v1/alerts/rules/<name> replaces it")
        if not create and not exists:
            raise RuleNotFound(f"no alert rule {rule.name!r}")
        if create and count >= MAX_RULES_PER_TENANT:
            raise TooManyRules(f"a tenant has at most {MAX_RULES_PER_TENANT} rules")
        self._write(tenant, rule.name, rule.stored(), 0, who)
        stored = StoredRule(tenant, rule, "api")
        with self._lock:
            self._api[(tenant, rule.name)] = stored
            self._recent[(tenant, rule.name)] = (time.monotonic(), stored)
        return stored

    def delete(self, tenant: str, name: str, who: str) -> None:
        if (tenant, name) in self._file:
            raise RuleReadOnly(f"rule {name!r} comes from the rules file; remove it there")
        with self._lock:
            if (tenant, name) not in self._api:
                raise RuleNotFound(f"no alert rule {name!r}")
        self._write(tenant, name, "", 1, who)
        with self._lock:
            self._api.pop((tenant, name), None)
            self._recent[(tenant, name)] = (time.monotonic(), None)

    def _write(self, tenant: str, name: str, text: str, deleted: int, who: str) -> None:
        self.store.insert_rows(
            "alert_rules",
            [{"tenant": tenant, "name": name, "rule": text, "deleted": deleted, "updated_by": who,
              "version": time.time_ns()}],
        )
