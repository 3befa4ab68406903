"""Ingest metrics, served at `GET /metrics` in the Prometheus text format.

Counters live in one plain object on the app (no client library: a dozen numbers do not need
one); the WAL and batcher gauges are read when the page is scraped.

Who sees what: an admin key (or an open server) sees every series, the process totals and
`flightlog_tenant_*` for each tenant. Any other key sees only its own tenant's
`flightlog_tenant_*` series and `flightlog_ingest_store_failing`: the totals and the WAL
gauges add up every tenant's traffic, so they are not shown to one tenant.
"""

from __future__ import annotations

import contextvars
from collections import Counter
from collections.abc import Iterable

from aiohttp import web
from flightlog.ingest.chunk import LineError
from flightlog.schema.app_state import DEFAULT_TENANT, EXTRAS
from flightlog.schema.route_table import add_route

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
INSERT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# Rejection reasons: a metric label for each kind of bad line. Parsers name the reason with
# the error (LineError.reason); an error without one is matched on the start of its message.
REJECT_REASONS = (
    ("invalid JSON", "invalid_json"),
    ("expected a JSON object", "not_an_object"),
    ("empty object", "empty_object"),
    ("line is ", "line_too_long"),
    ("message is ", "line_too_long"),
    ("line has ", "too_many_fields"),
    ("keys starting with", "reserved_key"),
)
# Listed on /metrics even at 0, so an alert on any of them has a series from the start.
KNOWN_REASONS = (
    "invalid_json",
    "not_an_object",
    "empty_object",
    "line_too_long",
    "too_many_fields",
    "too_deep",
    "reserved_key",
    "bad_timestamp",
    "older_than_retention",
    "past_latest_time",
    "other",
)


# The tenant the request being handled sends for; the ingest middleware sets it
# (flightlog.ingest.backpressure), syslog lines have none and belong to the default tenant.
TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("flightlog_metrics_tenant", default=DEFAULT_TENANT)
# Series every key with read scope may see: they say how the pipeline is, not who sent what.
PUBLIC_SERIES = frozenset({"flightlog_ingest_store_failing"})


def reject_reason(message: str) -> str:
    for prefix, reason in REJECT_REASONS:
        if message.startswith(prefix):
            return reason
    lowered = message.lower()
    if "time" in lowered or "1970" in lowered:
        return "bad_timestamp"
    return "other"


class IngestMetrics:
    def __init__(self) -> None:
        self.lines_accepted = 0
        self.bytes_accepted = 0
        self.chunks_accepted = 0
        self.lines_rejected: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()  # by status code
        self.throttled: Counter[str] = Counter()  # 429s by reason
        self.batches_inserted = 0
        self.lines_inserted = 0
        self.insert_errors = 0
        self.lines_quarantined = 0  # refused by the store for their content (flightlog.ingest.batcher)
        self.insert_buckets = [0] * len(INSERT_BUCKETS)
        self.insert_count = 0
        self.insert_sum = 0.0
        self.wire_bytes = 0  # request bodies as sent (compressed)
        self.batcher = None  # set by the batcher context; gauges read from it
        # The same counts per tenant, keyed (tenant, label).
        self.tenant_lines: Counter[str] = Counter()
        self.tenant_bytes: Counter[str] = Counter()
        self.tenant_wire_bytes: Counter[str] = Counter()
        self.tenant_rejected: Counter[tuple[str, str]] = Counter()
        self.tenant_requests: Counter[tuple[str, str]] = Counter()
        self.tenant_throttled: Counter[tuple[str, str]] = Counter()

    def accepted(self, lines: int, size: int) -> None:
        self.lines_accepted += lines
        self.bytes_accepted += size
        self.chunks_accepted += 1
        tenant = TENANT.get()
        self.tenant_lines[tenant] += lines
        self.tenant_bytes[tenant] += size

    def rejected(self, errors: Iterable[LineError | str]) -> None:
        """Count refused lines by reason: LineErrors (their reason, else told from the
        message) or bare messages."""
        tenant = TENANT.get()
        for error in errors:
            if isinstance(error, str):
                reason = reject_reason(error)
            else:
                reason = error.reason or reject_reason(error.error)
            self.lines_rejected[reason] += 1
            self.tenant_rejected[tenant, reason] += 1

    def throttle(self, reason: str) -> None:
        self.throttled[reason] += 1
        self.tenant_throttled[TENANT.get(), reason] += 1

    def request(self, status: int) -> None:
        self.requests[str(status)] += 1
        self.tenant_requests[TENANT.get(), str(status)] += 1

    def received(self, wire_bytes: int) -> None:
        self.wire_bytes += wire_bytes
        self.tenant_wire_bytes[TENANT.get()] += wire_bytes

    def batch_inserted(self, lines: int, seconds: float) -> None:
        self.batches_inserted += 1
        self.lines_inserted += lines
        self.insert_count += 1
        self.insert_sum += seconds
        for i, bound in enumerate(INSERT_BUCKETS):
            if seconds <= bound:
                self.insert_buckets[i] += 1

    def insert_failed(self) -> None:
        self.insert_errors += 1

    def render(self, tenant: str | None = None) -> str:
        """Every series, or (with `tenant`) only what that tenant may see."""
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> None:
            if tenant is not None and name not in PUBLIC_SERIES:
                return
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{labels} {_number(value)}")

        metric("flightlog_ingest_lines_accepted_total", "counter", "Lines written to the WAL and acknowledged.",
               [("", self.lines_accepted)])
        reasons = sorted(set(self.lines_rejected) | set(KNOWN_REASONS))
        metric("flightlog_ingest_lines_rejected_total", "counter", "Lines refused, by reason.",
               [(f'{{reason="{r}"}}', self.lines_rejected[r]) for r in reasons])
        metric("flightlog_ingest_bytes_total", "counter", "Bytes of accepted lines written to the WAL.",
               [("", self.bytes_accepted)])
        metric("flightlog_ingest_request_bytes_total", "counter", "Request bodies received, as sent.",
               [("", self.wire_bytes)])
        metric("flightlog_ingest_requests_total", "counter", "Ingest requests answered, by status.",
               [(f'{{status="{s}"}}', n) for s, n in sorted(self.requests.items())])
        throttles = sorted(set(self.throttled) | {"wal_full", "memory"})
        metric("flightlog_ingest_throttled_total", "counter", "Requests answered 429, by reason.",
               [(f'{{reason="{r}"}}', self.throttled[r]) for r in throttles])
        metric("flightlog_ingest_batches_inserted_total", "counter", "Batches inserted into the store.",
               [("", self.batches_inserted)])
        metric("flightlog_ingest_lines_inserted_total", "counter", "Lines inserted into the store.",
               [("", self.lines_inserted)])
        metric("flightlog_ingest_insert_errors_total", "counter", "Failed insert attempts (each is retried).",
               [("", self.insert_errors)])
        metric("flightlog_ingest_lines_quarantined_total", "counter",
               "Lines the store refused for their content, kept in the quarantine table.",
               [("", self.lines_quarantined)])
        cumulative = [(f'{{le="{b}"}}', n) for b, n in zip(INSERT_BUCKETS, self.insert_buckets)]
        metric("flightlog_ingest_insert_seconds", "histogram", "Time one batch insert took.",
               [(f"_bucket{labels}", n) for labels, n in cumulative]
               + [('_bucket{le="+Inf"}', self.insert_count), ("_sum", self.insert_sum), ("_count", self.insert_count)])
        batcher = self.batcher
        if batcher is not None:
            wal = batcher.wal
            metric("flightlog_wal_bytes", "gauge", "Bytes in the WAL not yet checkpointed.", [("", wal.bytes)])
            metric("flightlog_wal_max_bytes", "gauge", "The WAL's bound.", [("", wal.max_bytes)])
            metric("flightlog_wal_segments", "gauge", "WAL segments on disk.", [("", wal.segments)])
            metric("flightlog_wal_fsyncs_total", "counter", "Group-commit sync rounds.", [("", wal.fsyncs)])
            metric("flightlog_wal_fsync_seconds_total", "counter", "Time spent in fsync.", [("", wal.fsync_seconds)])
            metric("flightlog_wal_write_errors_total", "counter", "WAL writes that failed (disk full …).",
                   [("", wal.write_failures)])
            metric("flightlog_ingest_batches_pending", "gauge", "Sealed batches waiting for the store.",
                   [("", batcher.pending_batches)])
            metric("flightlog_ingest_store_failing", "gauge", "1 while inserts fail and are being retried.",
                   [("", int(batcher.store_failing))])
        self._render_tenants(out, tenant)
        return "\n".join(out) + "\n"

    def _render_tenants(self, out: list[str], only: str | None) -> None:
        def shown(tenant: str) -> bool:
            return only is None or tenant == only

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{{{labels}}} {_number(value)}")

        def one(counter: Counter[str]) -> list[tuple[str, float]]:
            return [(f"tenant={_label(t)}", n) for t, n in sorted(counter.items()) if shown(t)]

        def two(counter: Counter[tuple[str, str]], label: str) -> list[tuple[str, float]]:
            return [
                (f"tenant={_label(t)},{label}={_label(v)}", n) for (t, v), n in sorted(counter.items()) if shown(t)
            ]

        metric("flightlog_tenant_lines_accepted_total", "counter", "Lines acknowledged, by tenant.",
               one(self.tenant_lines))
        metric("flightlog_tenant_bytes_total", "counter", "Bytes of accepted lines, by tenant.",
               one(self.tenant_bytes))
        metric("flightlog_tenant_request_bytes_total", "counter", "Request bodies received as sent, by tenant.",
               one(self.tenant_wire_bytes))
        metric("flightlog_tenant_lines_rejected_total", "counter", "Lines refused, by tenant and reason.",
               two(self.tenant_rejected, "reason"))
        metric("flightlog_tenant_requests_total", "counter", "Ingest requests answered, by tenant and status.",
               two(self.tenant_requests, "status"))
        metric("flightlog_tenant_throttled_total", "counter", "Requests answered 429, by tenant and reason.",
               two(self.tenant_throttled, "reason"))


def _label(value: str) -> str:
    """A label value in the text format: quoted, with backslash, quote and newline escaped
    (a tenant name is whatever an admin chose)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _number(value: float) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


METRICS = web.AppKey("ingest_metrics", IngestMetrics)


def setup_metrics(app: web.Application) -> IngestMetrics:
    metrics = IngestMetrics()
    app[METRICS] = metrics
    add_route(app, "GET", "/metrics", get_metrics, scope="read")
    return metrics


def metrics_tenant(request: web.Request) -> str | None:
    """Whose series a scrape may see: every tenant's for an admin key or an open server (auth lets
    no keyless request through once keys exist), else the key's own tenant."""
    key = request.get("key")
    if key is None or getattr(key, "scope", "") == "admin":
        return None
    return key.tenant


async def get_metrics(request: web.Request) -> web.Response:
    tenant = metrics_tenant(request)
    # and what other parts of the app contribute (the alert evaluator's metrics)
    extras = request.app[EXTRAS].get("metrics", []) if EXTRAS in request.app else []
    text = request.app[METRICS].render(tenant) + "".join(render(tenant) for render in extras)
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})
