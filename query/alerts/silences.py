"""Silences: "no notifications for this rule, or for alerts with these labels, until then".

A silenced group still changes state and shows on the alerts page; only its notifications are
held back (Slack, webhooks, apprise and Alertmanager alike).
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass
from typing import Any

from flightlog.query.alerts.rules import RuleError, duration_seconds, validation_errors
from flightlog.query.alerts.state import ms_datetime
from flightlog.schema.store import Store
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MAX_SILENCE_S = 366 * 86400


class SilenceRequest(BaseModel):
    """What a client sends: a rule name and/or label matchers, and `for` (a duration) or `until`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    rule: str = Field("", max_length=120)
    matchers: dict[str, str] = Field(default_factory=dict, max_length=20)
    for_: str = Field("", alias="for")
    until: dt.datetime | None = None
    comment: str = Field("", max_length=1000)

    @field_validator("for_")
    @classmethod
    def _check_for(cls, value: str) -> str:
        if value:
            duration_seconds(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> SilenceRequest:
        if not self.rule and not self.matchers:
            raise ValueError("name a rule or give label matchers: a silence of everything is not allowed")
        if bool(self.for_) == (self.until is not None):
            raise ValueError("give either `for` (like 2h) or `until` (a time)")
        return self

    def until_ms(self, now_ms: int) -> int:
        if self.for_:
            end = now_ms + duration_seconds(self.for_) * 1000
        else:
            assert self.until is not None
            until = self.until if self.until.tzinfo else self.until.replace(tzinfo=dt.UTC)
            end = int(until.timestamp() * 1000)
        if end <= now_ms:
            raise RuleError([{"field": "until", "reason": "is in the past"}])
        if end - now_ms > MAX_SILENCE_S * 1000:
            raise RuleError([{"field": "until", "reason": "a silence lasts a year at most"}])
        return end


def parse_silence(data: Any) -> SilenceRequest:
    if not isinstance(data, dict):
        raise RuleError([{"field": "(silence)", "reason": 'send an object like {"rule": "…", "for": "2h"}'}])
    try:
        return SilenceRequest.model_validate(data)
    except ValidationError as exc:
        raise RuleError(validation_errors(exc)) from None


@dataclass(frozen=True)
class Silence:
    id: str
    tenant: str
    rule: str
    matchers: dict[str, str]
    until_ms: int
    comment: str
    created_by: str
    created_at_ms: int

    def matches(self, rule: str, labels: dict[str, str]) -> bool:
        if self.rule and self.rule != rule:
            return False
        return all(labels.get(k) == v for k, v in self.matchers.items())

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id, "rule": self.rule, "matchers": self.matchers, "comment": self.comment,
            "created_by": self.created_by, "until": _text(self.until_ms), "created_at": _text(self.created_at_ms),
        }


def _text(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"




def create(store: Store, tenant: str, request: SilenceRequest, who: str, now_ms: int | None = None) -> Silence:
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    silence = Silence(secrets.token_hex(8), tenant, request.rule, dict(request.matchers), request.until_ms(now_ms),
                      request.comment, who, now_ms)
    _write(store, silence, 0)
    return silence


def expire(store: Store, tenant: str, silence_id: str) -> bool:
    found = [s for s in active(store, tenant) if s.id == silence_id]
    if not found:
        return False
    _write(store, found[0], 1)
    return True


def _write(store: Store, silence: Silence, deleted: int) -> None:
    store.insert_rows("alert_silences", [{
        "tenant": silence.tenant, "id": silence.id, "rule": silence.rule, "matchers": silence.matchers,
        "until": ms_datetime(silence.until_ms), "comment": silence.comment, "created_by": silence.created_by,
        "created_at": ms_datetime(silence.created_at_ms), "deleted": deleted, "version": time.time_ns(),
    }])


def active(store: Store, tenant: str | None = None) -> list[Silence]:
    """Silences not yet over (one tenant's, or every tenant's for the evaluator)."""
    where = "deleted = 0 AND until > now64(3)"
    params: dict[str, Any] = {}
    if tenant is not None:
        where += " AND tenant = {t:String}"
        params["t"] = tenant
    result = store.query(
        "SELECT id, tenant, rule, matchers, toUnixTimestamp64Milli(until), comment, created_by, "
        f"toUnixTimestamp64Milli(created_at) FROM alert_silences FINAL WHERE {where} ORDER BY until",
        params,
    )
    return [Silence(i, t, r, dict(m), int(u), c, w, int(a)) for i, t, r, m, u, c, w, a in result.rows]
