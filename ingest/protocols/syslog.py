"""Syslog messages: RFC 5424, RFC 3164 and a bare `<PRI>message`; TCP framing.

RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD-ID k="v" …] MSG`. RFC 3164:
`<PRI>Mmm dd hh:mm:ss HOST TAG[pid]: MSG`, in the receiver's local time and the current year.
A bare `<PRI>message` (Python's SysLogHandler) has only the priority and the text.
The app name (tag) → service, hostname → host, severity → level; structured data parameters →
attrs by their names, and parameters named like build_id/deploy_id/trace_id… fill those columns.

TCP framing (RFC 6587): octet counting (`LEN SP MSG`) when a frame starts with a digit, else
a frame ends at LF or NUL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from flightlog.ingest.chunk import ParseResult
from flightlog.ingest.limits import Limits
from flightlog.ingest.protocols.common import ID_FIELDS, checked_result, take_fields

SEVERITIES = ("fatal", "fatal", "fatal", "error", "warn", "info", "info", "debug")
SEVERITY_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
FACILITIES = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
)
MONTHS = {
    m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)
}

_PRI = re.compile(rb"^<(\d{1,3})>")
_RFC3164_TS = re.compile(r"^([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d)(?:\.\d+)? ")
_TAG = re.compile(r"^([^\s:\[]{1,128})(?:\[([^\]]*)\])?: ?")
_BOM = "\ufeff"
# `build_id=b-17` in the text: how a sender without structured data (RFC 3164, a bare
# `<PRI>message`) can still tag its lines.
_ID_TOKEN = re.compile(r'(?:^|\s)(build_id|deploy_id|trace_id|span_id|request_id)=("[^"\s]*"|[^\s"]+)')


def parse(
    messages: Iterable[bytes],
    limits: Limits,
    tenant: str = "default",
    defaults: Mapping[str, str] | None = None,
    peer: str = "",
) -> ParseResult:
    return checked_result(_rows(messages, limits, peer), limits, tenant, defaults)


def _rows(messages: Iterable[bytes], limits: Limits, peer: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, data in enumerate(messages, 1):
        if len(data) > limits.max_line_bytes:
            yield number, f"message is {len(data)} bytes; the limit is {limits.max_line_bytes}"
            continue
        row = parse_message(data)
        if row is None:
            continue
        if peer:
            row.setdefault("attrs", {})["syslog.peer"] = peer
        yield number, row


def parse_message(data: bytes, now: datetime | None = None) -> dict[str, Any] | None:
    """One syslog message to a row; None for an empty one."""
    data = data.strip(b"\0\r\n")
    if not data.strip():
        return None
    attrs: dict[str, str] = {}
    row: dict[str, Any] = {}
    match = _PRI.match(data)
    if match and int(match.group(1)) <= 191:
        pri = int(match.group(1))
        facility, severity = divmod(pri, 8)
        row["level"] = SEVERITIES[severity]
        attrs["syslog.facility"] = FACILITIES[facility] if facility < len(FACILITIES) else str(facility)
        attrs["syslog.severity"] = SEVERITY_NAMES[severity]
        rest = data[match.end() :].decode("utf-8", "replace")
        if rest.startswith("1 "):
            _rfc5424(rest[2:], row, attrs)
        else:
            _rfc3164(rest, row, attrs, now)
    else:
        row["message"] = data.decode("utf-8", "replace").strip()
    if attrs:
        take_fields(row, attrs, ID_FIELDS)
    for match in _ID_TOKEN.finditer(row.get("message", "")):
        row.setdefault(match.group(1), match.group(2).strip('"'))
    if attrs:
        row["attrs"] = attrs
    return row


def _rfc5424(text: str, row: dict[str, Any], attrs: dict[str, str]) -> None:
    parts = text.split(" ", 5)
    while len(parts) < 6:
        parts.append("-")
    timestamp, hostname, app, procid, msgid, rest = parts
    if timestamp != "-":
        row["ts"] = timestamp
    if hostname != "-":
        row["host"] = hostname
    if app != "-":
        row["service"] = app
    if procid != "-":
        attrs["syslog.procid"] = procid
    if msgid != "-":
        attrs["syslog.msgid"] = msgid
    if rest.startswith("-"):
        message = rest[1:]
    elif rest.startswith("["):
        _, message = _structured_data(rest, attrs)
    else:
        message = rest
    message = message[1:] if message.startswith(" ") else message
    row["message"] = message.removeprefix(_BOM).rstrip("\r\n")


def _structured_data(text: str, attrs: dict[str, str]) -> tuple[str, str]:
    """Read `[id k="v" …][…]` into attrs; return (the SD text, the message after it)."""
    i, n = 0, len(text)
    while i < n and text[i] == "[":
        i += 1
        start = i
        while i < n and text[i] not in " ]":
            i += 1
        sd_id = text[start:i]
        ids = attrs.get("syslog.sd_id")
        attrs["syslog.sd_id"] = f"{ids},{sd_id}" if ids else sd_id
        while i < n and text[i] != "]":
            while i < n and text[i] == " ":
                i += 1
            eq = text.find("=", i)
            if eq < 0 or eq + 1 >= n or text[eq + 1] != '"':
                return text[:i], text[i:]  # malformed: keep the rest as the message
            name = text[i:eq]
            j, value = eq + 2, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n and text[j + 1] in '"\\]':
                    j += 1
                value.append(text[j])
                j += 1
            attrs[name] = "".join(value)
            i = j + 1
        i += 1  # past "]"
    return text[:i], text[i:]


def _rfc3164(text: str, row: dict[str, Any], attrs: dict[str, str], now: datetime | None) -> None:
    match = _RFC3164_TS.match(text)
    if match and match.group(1) in MONTHS:
        now = now or datetime.now().astimezone()
        month, day = MONTHS[match.group(1)], int(match.group(2))
        hour, minute, second = (int(match.group(k)) for k in (3, 4, 5))
        try:
            stamp = datetime(now.year, month, day, hour, minute, second, tzinfo=now.tzinfo)
            if stamp - now > timedelta(days=1):  # December's line read in January
                stamp = stamp.replace(year=now.year - 1)
            row["ts"] = stamp.isoformat()
        except ValueError:
            pass
        text = text[match.end() :]
        host, _, after = text.partition(" ")
        if host and not host.endswith(":") and "[" not in host and after:
            row["host"] = host
            text = after
    tag = _TAG.match(text)
    if tag:
        row["service"] = tag.group(1)
        if tag.group(2):
            attrs["syslog.procid"] = tag.group(2)
        text = text[tag.end() :]
    row["message"] = text.rstrip("\r\n")


def frames(buffer: bytearray) -> list[bytes]:
    """Cut the complete frames (octet-counted, or ended by LF or NUL) off the front of `buffer`.

    What is left is an incomplete frame; the caller bounds how long it may grow.
    """
    out: list[bytes] = []
    while buffer:
        if buffer[:1] in (b"\n", b"\0", b"\r", b" "):
            del buffer[:1]
            continue
        if buffer[:1].isdigit():
            space = buffer.find(b" ", 0, 12)
            if space > 0 and buffer[:space].isdigit():
                length = int(buffer[:space])
                if len(buffer) < space + 1 + length:
                    break
                out.append(bytes(buffer[space + 1 : space + 1 + length]))
                del buffer[: space + 1 + length]
                continue
        end = _frame_end(buffer)
        if end < 0:
            break
        out.append(bytes(buffer[:end]))
        del buffer[: end + 1]
    return out


def _frame_end(buffer: bytearray) -> int:
    lf, nul = buffer.find(b"\n"), buffer.find(b"\0")
    if lf < 0:
        return nul
    if nul < 0:
        return lf
    return min(lf, nul)
