"""Other channels (Teams, Discord, email, PagerDuty, …) through an apprise URL
(`discord://…`, `mailto://…`, `msteams://…`) instead of code of our own for each.

apprise is an optional dependency (`pip install 'flightlog[apprise]'`); its sends block, so they
run in a thread.
"""

from __future__ import annotations

import asyncio

import aiohttp
from flightlog.query.alerts.notify.alert import Alert
from flightlog.query.alerts.notify.dispatcher import SendFailed


def text(alert: Alert) -> tuple[str, str]:
    state = "TEST" if alert.test else alert.status.upper()
    group = ", ".join(f"{k}={v}" for k, v in alert.group_labels.items())
    title = f"[{state}] {alert.rule}" + (f" ({group})" if group else "")
    body = [f"value {alert.value:g}" + (f" ({alert.condition})" if alert.condition else "")]
    if alert.summary:
        body.append(alert.summary)
    if alert.generator_url:
        body.append(alert.generator_url)
    return title, "\n".join(body)


def available() -> bool:
    try:
        import apprise  # noqa: F401
    except ImportError:
        return False
    return True


class AppriseSender:
    kind = "apprise"

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key

    async def send(self, session: aiohttp.ClientSession, alert: Alert) -> None:
        try:
            import apprise
        except ImportError:
            raise SendFailed("apprise is not installed: pip install 'flightlog[apprise]'", permanent=True) from None
        title, body = text(alert)

        def notify() -> bool:
            sender = apprise.Apprise()
            if not sender.add(self.url):
                raise SendFailed("apprise does not understand this URL", permanent=True)
            return bool(sender.notify(title=title, body=body))

        if not await asyncio.to_thread(notify):
            raise SendFailed("apprise reported the notification as not delivered")
