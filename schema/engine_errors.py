"""What of an engine error a user may see: its kind, never its text.

ClickHouse quotes values in its messages (`Cannot parse string 'the line…' as UInt64`), and
prints the scope of the failing expression with constants folded in — so a scalar subquery's
answer can come back inside the error of the statement that used it. What a caller is told is
the error's name and code, with a fixed hint for the common ones, plus any `identifier` the
message names that also appears in the caller's own text (they typed it, so it is not row data).
The engine's whole message goes to the server log only.
"""

from __future__ import annotations

import logging
import re

from flightlog.schema.store import StoreError

log = logging.getLogger("flightlog.engine")

# The engine ends every message with its error's name in capitals: "… (CANNOT_PARSE_TEXT)".
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]{2,80})\)\s*$")
_IDENTIFIER = re.compile(r"`([^`\n]{1,200})`")
# chDB: "Code: 6. DB::Exception: …"; clickhouse-connect: "… received ClickHouse error code 6 …"
_CODE = re.compile(r"(?:\bCode: |\berror code )(\d{1,6})\b")

HINTS: dict[int, str] = {
    6: "a value could not be converted to the type asked for (the …OrNull / …OrZero functions return NULL or 0 instead)",
    36: "a function was given an argument it cannot use",
    42: "a function was called with the wrong number of arguments",
    43: "a function was given an argument of a type it does not take",
    44: "a function was given a column where it needs a constant, or the other way round",
    46: "a function it calls does not exist",
    47: "a column or alias it names does not exist",
    53: "two values it compares or combines have types that do not match",
    60: "a table it reads does not exist",
    62: "the statement is not valid SQL",
    153: "it divides by zero",
    159: "it ran past its time limit",
    160: "it would run past its time limit at its current speed",
    184: "an aggregate function is used inside another aggregate, or where none is allowed",
    215: "a column is neither aggregated nor in GROUP BY",
    241: "it needed more memory than it is allowed",
    307: "it would read or produce more bytes than it is allowed",
    395: "a throwIf() condition was true",
    396: "it would return more than it is allowed",
}


def error_code(exc: StoreError) -> int | None:
    if exc.code is not None:
        return exc.code
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


def error_kind(exc: StoreError) -> str:
    """`NAME (code N)` of an engine error, or what is known of it."""
    match = _NAME.search(str(exc))
    name = match.group(1) if match else ""
    code = error_code(exc)
    if name and code is not None:
        return f"{name} (code {code})"
    if code is not None:
        return f"engine error code {code}"
    return name or "engine error"


def public_reason(exc: StoreError, own_text: str = "") -> str:
    """A reason safe to show whoever sent `own_text`: the error's kind, a fixed hint, and the
    identifiers the message names that `own_text` holds too. No value of any row."""
    reason = error_kind(exc)
    hint = HINTS.get(error_code(exc) or -1)
    if hint:
        reason = f"{hint} ({reason})"
    if own_text:
        named = [f"`{name}`" for name in dict.fromkeys(_IDENTIFIER.findall(str(exc))) if name in own_text]
        if named:
            reason += ": " + ", ".join(named[:3])
    return reason


def log_engine_error(context: str, exc: StoreError) -> None:
    """The whole engine message, for the operator (it may quote row data: never for a client)."""
    log.warning("%s: %s", context, exc)
