"""Facts about a log line that every layer shares: its six levels and its id columns."""

from __future__ import annotations

# The six levels, least severe first; ingest maps every spelling onto them, query filters on them.
LEVELS: tuple[str, ...] = ("trace", "debug", "info", "warn", "error", "fatal")

# The id columns a line can carry (bloom-indexed: a filter on one finds a few lines anywhere in time).
ID_COLUMNS: tuple[str, ...] = ("build_id", "deploy_id", "trace_id", "span_id", "request_id")
