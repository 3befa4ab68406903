"""What `/flightlog <text>` asks: the text of a slash command → a `Command`, or a usage error.

    build <id>                 a build: status, span, services, hosts, levels, first error
    deploy <id>                the same for a deploy
    search <query> [15m|2h|…]  count, per-minute sparkline, newest 5 lines (default: last 15 min)
    errors <service> [window]  errors now vs the window before, top 3 messages (default: 1h)
    alerts                     what is firing now
    help                       this list

`-q` anywhere makes the answer ephemeral (only the asker sees it); by default it goes to the
channel. A window is a number and a unit: s, m, h, d (`15m`, `2h`, `1d`), at most 30 days.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

NAMES = ("build", "deploy", "search", "errors", "alerts", "help")
DEFAULT_SEARCH_WINDOW = "15m"
DEFAULT_ERRORS_WINDOW = "1h"
MAX_WINDOW_S = 30 * 86400
MAX_ID_CHARS = 200
MAX_QUERY_CHARS = 1000
_WINDOW = re.compile(r"^(\d{1,6})(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}

USAGE = [
    ("build <id>", "status, time span, services, hosts, counts by level and the first error of a build"),
    ("deploy <id>", "the same for a deploy"),
    ("search <query> [15m|2h|…]", "how many lines match, a per-minute sparkline and the newest 5"),
    ("errors <service> [window]", "errors now against the window before, and the top 3 messages"),
    ("alerts", "the alerts firing now"),
    ("help", "this list"),
]


class UsageError(ValueError):
    """The command text cannot be understood; the message says how to write it."""


@dataclass(frozen=True)
class Command:
    name: str  # one of NAMES
    arg: str = ""  # the id, the query or the service
    window: str = ""  # "15m" …, for search and errors
    ephemeral: bool = False

    @property
    def window_s(self) -> int:
        return window_seconds(self.window) if self.window else 0


def window_seconds(text: str) -> int:
    match = _WINDOW.match(text)
    if not match:
        raise UsageError(f"{text!r} is not a window like 15m, 2h or 1d")
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if not 0 < seconds <= MAX_WINDOW_S:
        raise UsageError(f"a window is between 1s and 30d, not {text}")
    return seconds


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:  # an unclosed quote: the words as typed
        return text.split()


def parse(text: str) -> Command:
    """The command in a slash command's `text`; raises UsageError when it makes no sense."""
    words = _words(text.strip())
    ephemeral = "-q" in words
    words = [w for w in words if w != "-q"]
    if not words:
        return Command("help", ephemeral=True)
    name, rest = words[0].lower(), words[1:]
    if name in ("help", "-h", "--help"):
        return Command("help", ephemeral=True)
    if name in ("build", "deploy"):
        if len(rest) != 1:
            raise UsageError(f"`{name} <id>` takes one id, like `/flightlog {name} 1234`")
        if len(rest[0]) > MAX_ID_CHARS:
            raise UsageError(f"a {name} id is {MAX_ID_CHARS} characters at most")
        return Command(name, rest[0], ephemeral=ephemeral)
    if name == "search":
        # the query as typed: quotes are phrases in the query language, not shell quoting
        raw = [w for w in text.split() if w != "-q"][1:]
        window = DEFAULT_SEARCH_WINDOW
        if raw and _WINDOW.match(raw[-1]):
            window = raw.pop()
            window_seconds(window)
        query = " ".join(raw)
        if not query:
            raise UsageError("`search <query> [15m]` needs a query, like `/flightlog search level:error service:api 2h`")
        if len(query) > MAX_QUERY_CHARS:
            raise UsageError(f"a query is {MAX_QUERY_CHARS} characters at most")
        return Command("search", query, window, ephemeral)
    if name == "errors":
        if not rest or len(rest) > 2:
            raise UsageError("`errors <service> [window]` names one service, like `/flightlog errors api 1h`")
        window = rest[1] if len(rest) == 2 else DEFAULT_ERRORS_WINDOW
        window_seconds(window)
        return Command("errors", rest[0], window, ephemeral)
    if name == "alerts":
        if rest:
            raise UsageError("`alerts` takes nothing after it")
        return Command("alerts", ephemeral=ephemeral)
    raise UsageError(f"no command {words[0]!r}; try `/flightlog help`")
