"""Our own wire format: NDJSON (one JSON object a line) or one JSON array of objects.

Python checks each line just enough to tell the client which lines were bad; mapping the
fields to columns is the engine's job (flightlog.ingest.insert_sql).
"""

from __future__ import annotations

import gc
from collections.abc import Mapping

import orjson
from flightlog.ingest.chunk import Chunk, LineError, ParseResult
from flightlog.ingest.insert_sql import CHUNK_KEY, SIMPLE_KEYS, TIMESTAMP_KEYS, is_simple_line, pairs_in
from flightlog.ingest.limits import Limits, Problem
from flightlog.ingest.protocols.timestamps import TimeWindow
from flightlog.schema.refusal import Refusal

# Keys a line carries beside its attributes; a line may have this many more keys than attributes.
_FIELD_ALLOWANCE = 24
# Deepest nesting a line may have. orjson reads any depth, but the engine drops a line nested
# past its own limit without a word, so such a line is refused here, with its number.
MAX_DEPTH = 100


def parse(
    body: bytes,
    content_type: str,
    limits: Limits,
    tenant: str = "default",
    defaults: Mapping[str, str] | None = None,
) -> ParseResult:
    # Parsing makes thousands of dicts and no cycles: the cyclic GC would only rescan the
    # heap over and over (it was half the parse time), so it waits until we are done.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        return _parse(body, content_type, limits, tenant, defaults)
    finally:
        if gc_was_on:
            gc.enable()


def _parse(
    body: bytes,
    content_type: str,
    limits: Limits,
    tenant: str,
    defaults: Mapping[str, str] | None,
) -> ParseResult:
    window = TimeWindow.now(limits.retention_days)
    if content_type == "application/json" and body.lstrip()[:1] == b"[":
        candidates = _array_lines(body)
    else:
        lines = [line.strip() for line in body.split(b"\n")]
        while lines and not lines[-1]:
            lines.pop()
        objects = _load_all(lines)
        if objects is None:
            candidates = _each_line(lines)
        else:
            fast = _clean_ndjson(body, lines, objects, limits, window, tenant, defaults)
            if fast is not None:
                return fast
            candidates = [(i + 1, line, obj) for i, (line, obj) in enumerate(zip(lines, objects))]
    good: list[bytes] = []
    errors: list[LineError] = []
    simple = True
    for number, line, parsed in candidates:
        problem = _check(line, parsed, limits, window)
        if problem is None:
            good.append(line)
            if simple and not is_simple_line(line, parsed):
                simple = False
        else:
            errors.append(LineError(number, problem.message, problem.reason))
    chunk = Chunk(b"\n".join(good), len(good), tenant, dict(defaults or {}), simple=simple and bool(good))
    return ParseResult(chunk, errors, len(errors))


def _load_all(lines: list[bytes]) -> list | None:
    """Every line parsed in one orjson call, or None when a line is blank, is not valid JSON
    or holds more than one value (then each line is parsed alone, to say which)."""
    if not lines or not all(lines):
        return None
    try:
        objects = orjson.loads(b"[" + b",".join(lines) + b"]")
    except orjson.JSONDecodeError:
        return None
    return objects if len(objects) == len(lines) else None


def _clean_ndjson(
    body: bytes,
    lines: list[bytes],
    objects: list,
    limits: Limits,
    window: TimeWindow,
    tenant: str,
    defaults: Mapping[str, str] | None,
) -> ParseResult | None:
    """The common case in a few C-speed passes: NDJSON where every line is a non-empty object
    within the limits. Returns None when any line needs the line-by-line checks (which then
    find the same answer, with the errors)."""
    if b"\\u0001" in body or b"\x01" in body:
        return None
    longest = max(map(len, lines))
    # A field takes at least 4 bytes (`"":0,`), so lines this short cannot have too many.
    if (
        longest > limits.max_line_bytes
        or longest > 4 * (limits.max_attributes + _FIELD_ALLOWANCE)
        or set(map(type, objects)) != {dict}
        or not all(objects)
    ):
        return None
    # Every line is an object, so holds one `{` at least: a line nested past MAX_DEPTH needs
    # MAX_DEPTH brackets beyond one a line in the whole body. One C pass over the body settles
    # the common case instead of one count a line (3% of ingest's CPU, profiled).
    if (
        longest > 2 * MAX_DEPTH
        and body.count(b"{") + body.count(b"[") - len(lines) >= MAX_DEPTH
        and any(_too_deep(line, obj) for line, obj in zip(lines, objects) if len(line) > 2 * MAX_DEPTH)
    ):
        return None
    low, high = window.quick_low, window.quick_high
    for parsed in objects:
        for key in TIMESTAMP_KEYS:
            value = parsed.get(key)
            if value is not None and value != "":  # the engine skips both to the next key
                break
        else:
            continue
        if type(value) is str and len(value) > 10 and value[4] == "-" and low < value[:10] < high:
            continue  # RFC 3339 well inside the window: the common case, at C speed
        if window.check(key, value) is not None:
            return None
    chunk = Chunk(b"\n".join(lines), len(lines), tenant, dict(defaults or {}), simple=_all_simple(body, objects))
    return ParseResult(chunk, [], 0)


def _all_simple(body: bytes, objects: list[dict]) -> bool:
    """insert_sql.is_simple_line for every line at once: only known keys, and no object or
    array but a flat `attrs` (each line has one brace, two with attrs; any more — nested,
    or inside a string — and the lines take the general path), and no key twice."""
    if b"[" in body or not all(map(SIMPLE_KEYS.issuperset, objects)):
        return False
    attrs = [parsed.get("attrs") for parsed in objects]
    with_attrs = sum(1 for a in attrs if type(a) is dict)
    if with_attrs != len(attrs) - attrs.count(None):
        return False
    if body.count(b"{") != len(objects) + with_attrs:
        return False
    return pairs_in(body) == sum(map(len, objects)) + sum(map(len, filter(None, attrs)))


def _each_line(lines: list[bytes]):
    """(line number, line, parsed object or the parse error) for every non-blank line."""
    out = []
    for i, line in enumerate(lines):
        if not line:
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            obj = exc
        out.append((i + 1, line, obj))
    return out


def _array_lines(body: bytes):
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refusal(400, f"body is not valid JSON: {exc}") from None
    return [(i + 1, orjson.dumps(item) if isinstance(item, dict) else b"", item) for i, item in enumerate(items)]


def _check(line: bytes, parsed: object, limits: Limits, window: TimeWindow) -> Problem | None:
    if len(line) > limits.max_line_bytes:
        return Problem("line_too_long", f"line is {len(line)} bytes; the limit is {limits.max_line_bytes}")
    if isinstance(parsed, Exception):
        return Problem("invalid_json", f"invalid JSON: {parsed}")
    if not isinstance(parsed, dict):
        return Problem("not_an_object", f"expected a JSON object, got {type(parsed).__name__}")
    if not parsed:
        return Problem("empty_object", "empty object: a line needs at least a message")
    if CHUNK_KEY in parsed:
        return Problem("reserved_key", "keys starting with \\u0001 are reserved")
    if _too_deep(line, parsed):
        return Problem("too_deep", f"line nests objects or arrays deeper than {MAX_DEPTH} levels")
    attrs = parsed.get("attrs")
    count = len(parsed) + (len(attrs) if isinstance(attrs, dict) else 0)
    if count > limits.max_attributes + _FIELD_ALLOWANCE:
        return Problem("too_many_fields", f"line has {count} fields; the limit is {limits.max_attributes} attributes")
    for key in TIMESTAMP_KEYS:
        value = parsed.get(key)
        if value is not None and value != "":  # the engine skips both to the next key
            return window.check(key, value)
    return None


def _too_deep(line: bytes, parsed: object) -> bool:
    if line.count(b"{") + line.count(b"[") <= MAX_DEPTH:  # C-speed: most lines stop here
        return False
    stack = [(parsed, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return False
