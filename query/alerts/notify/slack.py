"""Slack incoming webhooks: one Block Kit message per group and state change.

The message says which rule, which state, the value against the condition, the group's labels,
up to five sample lines, and has buttons to the lines in flightlog; a resolve is a message in
the same style. Built with flightlog.query.slack_blocks, which escapes everything from logs.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from flightlog.query import slack_blocks as sb
from flightlog.query.alerts.notify.alert import Alert, rfc3339_ms
from flightlog.query.alerts.notify.dispatcher import check_response

MAX_SAMPLE_CHARS = 300
_EMOJI = {"firing": ":red_circle:", "resolved": ":large_green_circle:"}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def message(alert: Alert) -> dict[str, Any]:
    state = "TEST" if alert.test else alert.status.upper()
    title = f"[{state}] {alert.rule}"
    group = ", ".join(f"{k}={v}" for k, v in alert.group_labels.items())
    blocks: list[dict[str, Any]] = [sb.header(title + (f" · {group}" if group else ""))]
    lead = f"{_EMOJI.get(alert.status, '')} *{sb.escape(alert.rule)}* is *{alert.status}*"
    if alert.test:
        lead = f":bell: Test notification for *{sb.escape(alert.rule)}*: this channel works."
    if alert.summary:
        lead += "\n" + sb.escape(alert.summary)
    fields = [("Value", _number(alert.value) + (f"  ({alert.condition})" if alert.condition else ""))]
    fields.append(("Since" if alert.status == "firing" else "Resolved", rfc3339_ms(
        alert.starts_at_ms if alert.status == "firing" else alert.ends_at_ms)))
    fields += [(k, v) for k, v in alert.group_labels.items()]
    blocks.append(sb.section(lead, fields))
    for name, text in alert.annotations.items():
        if name not in ("summary",) and text:
            blocks.append(sb.section(f"*{sb.escape(name)}*: {sb.escape(text)}"))
    if alert.sample_lines and alert.status == "firing":
        lines = []
        for line in alert.sample_lines[:5]:
            text = f"{line.get('ts', '')[11:23]} {line.get('level', '')} {line.get('service', '')}/{line.get('host', '')} "
            lines.append((text + str(line.get("message", "")))[:MAX_SAMPLE_CHARS])
        blocks.append(sb.code_lines(lines))
    buttons = [sb.button("Open the lines", alert.generator_url, style="primary")] if alert.generator_url else []
    buttons += [sb.button(name.replace("_", " ").capitalize(), url) for name, url in alert.links.items()
                if url and url != alert.generator_url]
    if buttons:
        blocks.append(sb.actions(buttons[:5]))
    blocks.append(sb.context([f"flightlog · tenant {sb.escape(alert.tenant)}"]))
    fallback = f"{title}{': ' + group if group else ''} value {_number(alert.value)}"
    return sb.message(fallback, blocks)


class SlackSender:
    kind = "slack"

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key

    async def send(self, session: aiohttp.ClientSession, alert: Alert) -> None:
        body = orjson.dumps(message(alert))
        async with session.post(self.url, data=body, headers={"Content-Type": "application/json"}) as response:
            await check_response(response)
