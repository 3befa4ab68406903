"""A generic webhook: Alertmanager's webhook JSON (version 4), so receivers written for
Alertmanager work unchanged, optionally signed.

With a secret, each POST carries `X-Flightlog-Signature: sha256=<hex HMAC-SHA256(secret, body)>`
(GitHub's scheme) and `X-Flightlog-Timestamp`; verify the signature over the raw body with a
constant-time comparison.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import aiohttp
import orjson
from flightlog.query.alerts.notify.alert import Alert, rfc3339_ms
from flightlog.query.alerts.notify.dispatcher import check_response

SIGNATURE_HEADER = "X-Flightlog-Signature"
RECEIVER = "flightlog"


def group_key(alert: Alert) -> str:
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(alert.group_labels.items()))
    return f'{{}}/{{alertname="{alert.rule}"}}:{{{labels}}}'


def payload(alert: Alert, external_url: str) -> dict[str, Any]:
    """One group's state change as Alertmanager's webhook body (version 4)."""
    return {
        "version": "4",
        "groupKey": group_key(alert),
        "truncatedAlerts": 0,
        "status": alert.status,
        "receiver": RECEIVER,
        "groupLabels": {"alertname": alert.rule, **alert.group_labels},
        "commonLabels": alert.labels,
        "commonAnnotations": alert.annotations,
        "externalURL": external_url,
        "alerts": [
            {
                "status": alert.status,
                "labels": alert.labels,
                "annotations": alert.annotations,
                "startsAt": rfc3339_ms(alert.starts_at_ms),
                "endsAt": rfc3339_ms(alert.ends_at_ms),
                "generatorURL": alert.generator_url,
                "fingerprint": alert.fingerprint,
            }
        ],
    }


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    kind = "webhook"

    def __init__(self, url: str, secret: str, key: str, external_url: str) -> None:
        self.url = url
        self.secret = secret
        self.key = key
        self.external_url = external_url

    async def send(self, session: aiohttp.ClientSession, alert: Alert) -> None:
        body = orjson.dumps(payload(alert, self.external_url))
        headers = {"Content-Type": "application/json", "X-Flightlog-Timestamp": str(int(time.time()))}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        async with session.post(self.url, data=body, headers=headers) as response:
            await check_response(response)
