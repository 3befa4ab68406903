"""The same answers for Mattermost, whose Slack-compatible slash commands show `text` (Markdown)
and ignore Block Kit: each block becomes Markdown, buttons with a URL become links.

Mattermost reads mentions differently from Slack: `@channel`, `@here`, `@all` and `@name` ping
wherever they stand outside code, and Slack's `<!channel>` means nothing. So every `@` gets a
zero-width space after it (the text looks the same, pings nobody). The `&lt;` `&gt;` `&amp;`
escapes made for Slack are entities Mattermost's Markdown shows as the characters they stand
for; inside code blocks, where Markdown shows text as typed, they are turned back.
"""

from __future__ import annotations

import re
from typing import Any

MAX_TEXT_CHARS = 16_000  # Mattermost's post limit is 16,383 characters
_BOLD = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_FENCE = re.compile(r"(```.*?```)", re.S)


def _inert(text: str) -> str:
    return text.replace("@", "@\u200b")


def _mrkdwn_to_markdown(text: str) -> str:
    """Slack's *bold* → Markdown's **bold**, outside code fences; mentions made inert."""
    parts = _FENCE.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # a fence: a block of its own, where Markdown shows entities as typed, so undo them
            inner = part[3:-3].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
            out.append("\n```\n" + inner + "\n```\n")
        else:
            out.append(_BOLD.sub(r"**\1**", part))
    return _inert("".join(out))


def _text_of(element: dict[str, Any]) -> str:
    return str(element.get("text", "")) if isinstance(element, dict) else ""


def markdown(message: dict[str, Any]) -> str:
    """The message's blocks as one Markdown text (the fallback text when there are none)."""
    lines: list[str] = []
    for block in message.get("blocks") or []:
        kind = block.get("type")
        if kind == "header":
            lines.append("#### " + _inert(_text_of(block.get("text", {}))))
        elif kind == "section":
            lines.append(_mrkdwn_to_markdown(_text_of(block.get("text", {}))))
            for item in block.get("fields") or []:
                title, _, value = _text_of(item).partition("\n")
                lines.append(f"{_mrkdwn_to_markdown(title)}: {_mrkdwn_to_markdown(value)}")
        elif kind == "context":
            lines.append(" · ".join(_mrkdwn_to_markdown(_text_of(e)) for e in block.get("elements") or []))
        elif kind == "actions":
            links = [f"[{_inert(_text_of(e.get('text', {})))}]({e['url']})" for e in block.get("elements") or []
                     if e.get("url")]
            if links:
                lines.append(" · ".join(links))
        elif kind == "divider":
            lines.append("---")
    text = "\n".join(line for line in lines if line.strip()) or _inert(str(message.get("text", "")))
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + "…"
