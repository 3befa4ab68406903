"""Hand alerts to Alertmanager (`POST /api/v2/alerts`), as Prometheus' and Loki's rulers do.

Firing alerts are re-sent on every evaluation with `endsAt` a few intervals ahead, so
Alertmanager keeps them alive while we keep seeing them and resolves them on its own if we go
away for long; a resolved alert is sent with `endsAt` set to when it resolved. Alertmanager
groups, silences, inhibits and routes from there.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from flightlog.query.alerts.notify.alert import Alert, rfc3339_ms
from flightlog.query.alerts.notify.dispatcher import check_response


def payload(alerts: list[Alert], resend_ms: int) -> list[dict[str, Any]]:
    out = []
    for alert in alerts:
        ends = alert.ends_at_ms if alert.status == "resolved" else 0
        item: dict[str, Any] = {
            "labels": alert.labels,
            "annotations": alert.annotations,
            "startsAt": rfc3339_ms(alert.starts_at_ms),
            "generatorURL": alert.generator_url,
        }
        if ends:
            item["endsAt"] = rfc3339_ms(ends)
        elif resend_ms:
            item["endsAt"] = rfc3339_ms(resend_ms)
        out.append(item)
    return out


class AlertmanagerSender:
    kind = "alertmanager"

    def __init__(self, base_url: str) -> None:
        self.url = base_url.rstrip("/") + "/api/v2/alerts"
        self.key = "alertmanager:" + base_url

    async def send(self, session: aiohttp.ClientSession, item: tuple[list[Alert], int]) -> None:
        alerts, ends_ms = item
        body = orjson.dumps(payload(alerts, ends_ms))
        async with session.post(self.url, data=body, headers={"Content-Type": "application/json"}) as response:
            await check_response(response)
