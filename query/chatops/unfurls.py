"""Link unfurls: a flightlog URL pasted in Slack (a build, a deploy, a search) → a summary.

Only URLs under this server's public URL are ours; anything else is left to Slack. The summary
is the compact form of the command's answer, for the tenant the workspace maps to: a URL of
another tenant's build unfurls as "no such build", never as that tenant's lines.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from flightlog.query.chatops import answers
from flightlog.query.chatops.commands import DEFAULT_SEARCH_WINDOW, UsageError, window_seconds
from flightlog.schema.id_paths import id_from_segment
from flightlog.schema.store import Store


def target_of(url: str, base: str) -> tuple[str, str, str] | None:
    """("build" | "deploy", id, "") or ("search", query, window) for a URL of ours; else None."""
    ours, link = urlsplit(base), urlsplit(url)
    if (link.scheme, link.netloc) != (ours.scheme, ours.netloc):
        return None
    prefix = ours.path.rstrip("/")
    path = link.path
    if prefix:
        if not path.startswith(prefix + "/"):
            return None
        path = path[len(prefix):]
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] in ("builds", "deploys") and parts[1]:
        return (parts[0][:-1], id_from_segment(unquote(parts[1])), "")
    if parts == ["search"]:
        query = parse_qs(link.query)
        q = (query.get("q") or [""])[0]
        window = (query.get("from") or [DEFAULT_SEARCH_WINDOW])[0]
        try:
            window_seconds(window)
        except UsageError:
            window = DEFAULT_SEARCH_WINDOW  # a fixed time range: summarise the recent window
        return ("search", q, window) if q else None
    return None


def unfurl(store: Store, tenant: str, url: str, base: str) -> dict[str, Any] | None:
    """The `unfurls` entry for one URL (`{"blocks": [...]}`), or None when it is not ours."""
    target = target_of(url, base)
    if target is None:
        return None
    kind, arg, window = target
    if kind == "search":
        found = answers.search_answer(store, tenant, arg, window, window_seconds(window), base)
    else:
        found = answers.trail_answer(store, tenant, kind, arg, base, compact=True)
    return {"blocks": found.message["blocks"]}
