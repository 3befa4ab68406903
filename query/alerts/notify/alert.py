"""One notification about one alert group, as every channel receives it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "not set" time


def rfc3339_ms(ms: int) -> str:
    if ms <= 0:
        return ZERO_TIME
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Alert:
    tenant: str
    rule: str
    status: str  # "firing" | "resolved"
    labels: dict[str, str]  # alertname, the rule's labels and the group's
    group_labels: dict[str, str]  # the group's own (group_by values)
    annotations: dict[str, str]
    value: float
    starts_at_ms: int
    ends_at_ms: int  # 0 while firing
    generator_url: str  # absolute link to the matching lines
    fingerprint: str
    links: dict[str, str] = field(default_factory=dict)  # name → absolute URL
    sample_lines: list[dict[str, Any]] = field(default_factory=list)
    condition: str = ""
    test: bool = False

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.annotations.get("description") or ""
