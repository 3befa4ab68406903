"""Turn a wire line (one JSON object) into a `logs` row — inside the engine.

Python validates each line (cheap, in C via orjson) so a client hears which lines were bad,
then the engine does the per-line mapping of aliases, timestamps and attributes while it
inserts: it parses JSON far faster than Python can (see docs/ingest.md).

The SQL below is generated from constants only; nothing a client sends becomes SQL text.
Per-chunk defaults (tenant, arrival time, fields from query parameters and headers) reach the
engine as query parameters indexed by the chunk number each line carries in CHUNK_KEY.
"""

from __future__ import annotations

# A key no client uses; the batcher puts it first in every wire line.
CHUNK_KEY = "\u0001c"

TIMESTAMP_KEYS = ("timestamp", "time", "@timestamp", "ts")
MESSAGE_KEYS = ("msg", "message", "log")
LEVEL_KEYS = ("severity", "level", "log.level", "lvl")
SERVICE_KEYS = ("service", "service.name", "app", "job")
HOST_KEYS = ("host", "hostname", "host.name", "pod")
BUILD_KEYS = ("build_id", "build.id", "ci.build.id", "buildId")
DEPLOY_KEYS = ("deploy_id", "deployment.id", "deploy.id", "deployId")
TRACE_KEYS = ("trace_id", "trace.id", "traceId", "traceid")
SPAN_KEYS = ("span_id", "span.id", "spanId", "spanid")
REQUEST_KEYS = ("request_id", "request.id", "requestId", "x_request_id")

# Nested objects some shippers send (ECS): {"service": {"name": ...}} and friends.
NESTED = {
    "service": (("service", "name"),),
    "host": (("host", "name"), ("host", "hostname")),
    "level": (("log", "level"),),
    "build_id": (("build", "id"), ("ci", "build", "id")),
    "deploy_id": (("deployment", "id"), ("deploy", "id")),
    "trace_id": (("trace", "id"),),
    "span_id": (("span", "id"),),
    "request_id": (("request", "id"),),
}

FIELD_KEYS = {
    "service": SERVICE_KEYS,
    "host": HOST_KEYS,
    "build_id": BUILD_KEYS,
    "deploy_id": DEPLOY_KEYS,
    "trace_id": TRACE_KEYS,
    "span_id": SPAN_KEYS,
    "request_id": REQUEST_KEYS,
}

# Fields a chunk can default from query parameters or headers.
DEFAULTABLE = ("service", "host", "build_id", "deploy_id", "trace_id", "request_id")

KNOWN_KEYS = frozenset(
    (CHUNK_KEY, "attrs", "tenant", "observed_ts")
    + TIMESTAMP_KEYS
    + MESSAGE_KEYS
    + LEVEL_KEYS
    + SERVICE_KEYS
    + HOST_KEYS
    + BUILD_KEYS
    + DEPLOY_KEYS
    + TRACE_KEYS
    + SPAN_KEYS
    + REQUEST_KEYS
)


# Spellings seen in the wild, mapped to the six levels. Numbers are pino/bunyan levels.
LEVEL_SYNONYMS = {
    "trace": "trace", "trc": "trace", "10": "trace", "verbose": "trace",
    "debug": "debug", "dbg": "debug", "20": "debug", "d": "debug",
    "info": "info", "information": "info", "informational": "info", "inf": "info",
    "notice": "info", "30": "info", "i": "info",
    "warn": "warn", "warning": "warn", "wrn": "warn", "40": "warn", "w": "warn",
    "error": "error", "err": "error", "eror": "error", "50": "error", "e": "error",
    "fatal": "fatal", "critical": "fatal", "crit": "fatal", "alert": "fatal",
    "emerg": "fatal", "emergency": "fatal", "panic": "fatal", "60": "fatal", "f": "fatal",
}


def _sql_str(value: str) -> str:
    """Quote a constant of ours as a ClickHouse string literal."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _column(key: str) -> str:
    """A key's column in the flat source (flat_source_structure), renamed in select_rows_sql
    so no column shares a name with an output alias."""
    return f"k{_FLAT_KEYS.index(key)}"


def _identifier(key: str) -> str:
    return "`" + key.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _scalar(key: str, flat: bool = False) -> str:
    """The value of a top-level key as text; NULL when absent, null, empty or an object."""
    if flat:
        # Simple lines hold only scalars here, read as text (strings unescaped, numbers and
        # booleans as written): the same text the map path gets.
        return f"nullIf({_column(key)}, '')"
    raw = f"m[{_sql_str(key)}]"
    return (
        f"multiIf({raw} IN ('', 'null', '\"\"'), NULL, startsWith({raw}, '\"'), "
        f"JSONExtractString({raw}), startsWith({raw}, '{{') OR startsWith({raw}, '['), NULL, {raw})"
    )


def _nested(path: tuple[str, ...]) -> str:
    head, *rest = path
    keys = ", ".join(_sql_str(k) for k in rest)
    return f"nullIf(JSONExtractString(m[{_sql_str(head)}], {keys}), '')"


def _first(field: str, keys: tuple[str, ...], flat: bool = False) -> str:
    options = [_scalar(k, flat) for k in keys]
    if not flat:  # simple lines have no nested objects
        options += [_nested(p) for p in NESTED.get(field, ())]
    return f"coalesce({', '.join(options)})"


def _field(field: str, keys: tuple[str, ...], flat: bool = False) -> str:
    default = f"{{d_{field}:Array(String)}}[chunk]" if field in DEFAULTABLE else "''"
    return f"coalesce({_first(field, keys, flat)}, {default})"


def _timestamp(flat: bool = False) -> str:
    text = _first("ts", TIMESTAMP_KEYS, flat)
    # Epoch numbers: the unit is decided by magnitude (s, ms, µs, ns), exactly in Decimal.
    number = "toDecimal128OrNull(ts_text, 9)"
    scaled = (
        f"multiIf(abs({number}) < 1e11, {number} * 1000000000, "
        f"abs({number}) < 1e14, {number} * 1000000, abs({number}) < 1e17, {number} * 1000, {number})"
    )
    # The parsers refuse a time the store cannot hold (flightlog.ingest.protocols.timestamps);
    # should one get past them, an epoch beyond Int64 nanoseconds becomes NULL (the arrival
    # time) here rather than an overflow that fails the insert of its whole batch, forever.
    # Clamped in Int128 and the bounds turned to NULL: an `if` around the conversion cost the
    # epoch path 2-3x (measured), the clamp about nothing.
    largest = 2**63 - 1
    clamped = f"toInt64(least(greatest(toInt128({scaled}), -{largest}), {largest}))"
    epoch = f"fromUnixTimestamp64Nano(nullIf(nullIf({clamped}, {largest}), -{largest}))"
    parsed = (
        "if(match(ts_text, '^-?[0-9]+(\\\\.[0-9]+)?$'), "
        f"{epoch}, parseDateTime64BestEffortOrNull(ts_text, 9, 'UTC'))"
    )
    return text, f"ifNull({parsed}, observed)"


def _level(flat: bool = False) -> str:
    keys = ", ".join(_sql_str(k) for k in LEVEL_SYNONYMS)
    values = ", ".join(_sql_str(v) for v in LEVEL_SYNONYMS.values())
    raw = f"lower(trimBoth(ifNull({_first('level', LEVEL_KEYS, flat)}, '')))"
    return f"transform({raw}, [{keys}], [{values}], 'info')"


def _attrs(flat: bool = False) -> str:
    known = ", ".join(_sql_str(k) for k in sorted(KNOWN_KEYS))
    as_text = "if(startsWith(v, '\"'), JSONExtractString(v), v)"
    if flat:  # only known keys at the top; the reader makes `attrs` a map of text already
        return _column("attrs")
    own = f"mapApply((k, v) -> (k, {as_text}), mapFilter((k, v) -> k NOT IN ({known}), m))"
    nested = "JSONExtractKeysAndValuesRaw(m['attrs'])"
    extra = f"mapApply((k, v) -> (k, {as_text}), mapFromArrays({nested}.1, {nested}.2))"
    return f"mapUpdate({own}, {extra})"


def select_rows_sql(source: str, seq_base_param: str = "seq_base", flat: bool = False) -> str:
    """A SELECT producing `logs` rows from `source`, a table expression with a `line` column.

    Parameters it needs: the d_<field> arrays (one entry per chunk), d_tenant, d_observed
    (nanoseconds since the epoch), and {seq_base:UInt64}.

    With `flat`, `source` instead has one Nullable(String) column per known key
    (flat_source_structure(), read with FLAT_READ_SETTINGS) and holds only simple lines
    (is_simple_line): the engine's own JSON reader splits the line, and no per-key lookup
    is needed — several times cheaper, and the same rows.
    """
    ts_text, ts = _timestamp(flat)
    columns = [
        f"{ts} AS ts",
        "observed AS observed_ts",
        f"{{{seq_base_param}:UInt64}} + rowNumberInAllBlocks() AS seq",
        "{d_tenant:Array(String)}[chunk] AS tenant",
        f"{_field('service', SERVICE_KEYS, flat)} AS service",
        f"{_field('host', HOST_KEYS, flat)} AS host",
        f"{_level(flat)} AS level",
        f"ifNull({_message(flat)}, '') AS message",
    ]
    for field in ("build_id", "deploy_id", "trace_id", "span_id", "request_id"):
        columns.append(f"{_field(field, FIELD_KEYS[field], flat)} AS {field}")
    columns.append(f"{_attrs(flat)} AS attrs")
    if flat:
        return (
            "SELECT " + ",\n  ".join(columns) + "\nFROM (SELECT "
            + "".join(f"{_identifier(k)} AS {_column(k)}, " for k in _FLAT_KEYS)
            +
            f"toUInt32OrZero({_column(CHUNK_KEY)}) AS chunk, "
            "fromUnixTimestamp64Nano({d_observed:Array(Int64)}[chunk]) AS observed, "
            f"{ts_text} AS ts_text "
            f"FROM {source})"
        )
    return (
        "SELECT " + ",\n  ".join(columns) + "\nFROM (SELECT line, "
        "JSONExtractKeysAndValuesRaw(line) AS kv, mapFromArrays(kv.1, kv.2) AS m, "
        f"toUInt32OrZero(m[{_sql_str(CHUNK_KEY)}]) AS chunk, "
        "fromUnixTimestamp64Nano({d_observed:Array(Int64)}[chunk]) AS observed, "
        f"{ts_text} AS ts_text "
        f"FROM {source})"
    )


def _message(flat: bool = False) -> str:
    strings = [_scalar(k, flat) for k in MESSAGE_KEYS]
    if flat:
        return f"coalesce({', '.join(strings)})"
    structured = [f"if(startsWith(m[{_sql_str(k)}], '{{'), m[{_sql_str(k)}], NULL)" for k in ("message", "msg")]
    return f"coalesce({', '.join(strings + structured)})"


# --- simple lines ---------------------------------------------------------------------------
# A line is simple when every top-level key is a known key and every value is a scalar, but
# for `attrs`, a flat object of scalars; and no value is null. Such lines are read by the engine's JSONEachRow
# reader into one column per known key (select_rows_sql(flat=True)); any other line takes the
# general path. The test is on the parsed keys and on the raw bytes: a brace or bracket inside
# a string only sends a simple line down the general path, which is always right.

SIMPLE_KEYS = frozenset(KNOWN_KEYS - {CHUNK_KEY})
HEADER_KEY = "\u0001h"  # the batcher's chunk header lines carry it; the flat source skips them
_FLAT_KEYS = sorted(KNOWN_KEYS | {HEADER_KEY})

FLAT_READ_SETTINGS = {
    "input_format_json_read_numbers_as_strings": 1,
    "input_format_json_read_bools_as_strings": 1,
    "input_format_json_read_objects_as_strings": 1,
    "input_format_json_read_arrays_as_strings": 1,
    "input_format_skip_unknown_fields": 1,
    "input_format_json_infer_incomplete_types_as_strings": 1,
}


def is_simple_line(line: bytes, parsed: dict) -> bool:
    if not parsed.keys() <= SIMPLE_KEYS or b"[" in line or has_null(line):
        return False
    attrs = parsed.get("attrs")
    if attrs is None:
        return line.count(b"{") == 1 and pairs_in(line) == len(parsed)
    return type(attrs) is dict and line.count(b"{") == 2 and pairs_in(line) == len(parsed) + len(attrs)


def pairs_in(data: bytes) -> int:
    """How many `"key":` the bytes hold: when that is more than the keys the parsed objects
    have, a key is there twice (or `":` is inside a string). The engine's JSON reader refuses
    a line with a key twice, and with it the whole batch, so such lines take the general path."""
    return data.count(b'":')


def has_null(data: bytes) -> bool:
    """A JSON null somewhere (or text that looks like one: then the general path decides)."""
    return b":null" in data or b": null" in data


def flat_source_structure() -> str:
    """The column list of the flat source: every known key (and the header key) as text,
    `attrs` as a map of text (its values are scalars, none null, in a simple line)."""
    return ", ".join(
        f"{_identifier(k)} {'Map(String, String)' if k == 'attrs' else 'Nullable(String)'}" for k in _FLAT_KEYS
    )
