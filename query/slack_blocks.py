"""Slack messages in Block Kit, built in one place: alerts use it, and so can ChatOps answers.

Everything that came from logs or users goes through `escape` before it is put in mrkdwn:
Slack reads `<!channel>`, `<@U123>` and `<http://x|y>` as pings and links, so `&`, `<` and `>`
become entities and a log line pings nobody. Slack's limits are enforced here too: at most 50
blocks a message, 3,000 characters a section text, 75 a button label, 10 fields a section.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_FIELD_CHARS = 2000
MAX_FIELDS = 10
MAX_BUTTON_TEXT = 75
MAX_HEADER_CHARS = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_URL_CHARS = 3000
ELLIPSIS = "…"

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape(text: Any) -> str:
    """Text safe to place in mrkdwn: no ping, no link, no entity of its own."""
    return str(text).translate(_ESCAPES)


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, with an ellipsis when cut (never splitting an escape)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]  # a half `&amp;` would show as text
    return cut + ELLIPSIS


def plain(text: str, limit: int = MAX_SECTION_CHARS) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(str(text), limit) or " ", "emoji": False}


def mrkdwn(text: str, limit: int = MAX_SECTION_CHARS) -> dict[str, Any]:
    """A mrkdwn text object; `text` must already be escaped where it holds outside values."""
    return {"type": "mrkdwn", "text": clip(text, limit) or " "}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": plain(text, MAX_HEADER_CHARS)}


def section(text: str, fields: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """A section of escaped-by-the-caller mrkdwn, with optional (title, value) fields (escaped here)."""
    block: dict[str, Any] = {"type": "section", "text": mrkdwn(text)}
    if fields:
        block["fields"] = [
            mrkdwn(f"*{escape(title)}*\n{escape(value)}", MAX_FIELD_CHARS) for title, value in fields[:MAX_FIELDS]
        ]
    return block


def code_lines(lines: Iterable[str], limit: int = MAX_SECTION_CHARS) -> dict[str, Any]:
    """Log lines in a preformatted section, each escaped; cut to fit one section."""
    body = "\n".join(escape(line).replace("```", "`\u200b``") for line in lines)
    return {"type": "section", "text": mrkdwn("```" + clip(body, limit - 7) + "```", limit)}


def context(texts: Iterable[str]) -> dict[str, Any]:
    """Small grey text; each item escaped by the caller."""
    return {"type": "context", "elements": [mrkdwn(t) for t in list(texts)[:MAX_CONTEXT_ELEMENTS]]}


def button(text: str, url: str, style: str | None = None, action_id: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": plain(text, MAX_BUTTON_TEXT), "url": url[:MAX_URL_CHARS]}
    if style in ("primary", "danger"):
        element["style"] = style
    if action_id:
        element["action_id"] = action_id
    return element


def actions(buttons: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(buttons)[:25]}


def divider() -> dict[str, Any]:
    return {"type": "divider"}


def message(fallback: str, blocks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A message body for chat.postMessage or an incoming webhook. `fallback` is the plain
    notification text (escaped: Slack parses it as mrkdwn too)."""
    kept = [b for b in blocks if b is not None][:MAX_BLOCKS]
    return {"text": clip(escape(fallback), MAX_SECTION_CHARS), "blocks": kept}
