"""A `logging.Handler` that ships records to flightlog in the background.

    import logging
    from flightlog.ingest.logging_handler import FlightlogHandler

    logging.getLogger().addHandler(FlightlogHandler("http://flightlog:7777", service="api",
                                                    build_id=os.environ.get("BUILD_ID")))

`emit` only puts the record on a bounded queue and returns: it never blocks the caller and
never raises; when the queue is full the record is dropped and counted (`handler.dropped`).
A background thread sends gzip'd batches and retries 429/5xx, honouring Retry-After.
Fields given with `extra=` become attributes; extra keys named like a column (`build_id`,
`deploy_id`, `trace_id`, `span_id`, `request_id`, `service`, `host`) fill that column.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from flightlog.ingest.shipper import Shipper

# What every LogRecord carries; the rest of its __dict__ came from `extra=`.
_RECORD_KEYS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_COLUMNS = ("build_id", "deploy_id", "trace_id", "span_id", "request_id", "service", "host")


class FlightlogHandler(logging.Handler):
    def __init__(
        self,
        url: str = "http://127.0.0.1:7777",
        *,
        service: str | None = None,
        host: str | None = None,
        build_id: str | None = None,
        deploy_id: str | None = None,
        api_key: str | None = None,
        level: int = logging.NOTSET,
        batch_lines: int = 500,
        batch_seconds: float = 1.0,
        max_queue: int = 10_000,
        max_retry_seconds: float = 30.0,
    ) -> None:
        super().__init__(level)
        defaults = {
            "service": service,
            "host": host or socket.gethostname(),
            "build_id": build_id,
            "deploy_id": deploy_id,
        }
        self.shipper = Shipper(
            url,
            {k: v for k, v in defaults.items() if v},
            api_key=api_key,
            batch_lines=batch_lines,
            batch_seconds=batch_seconds,
            max_queue=max_queue,
            block=False,
            max_retry_seconds=max_retry_seconds,
        )

    @property
    def dropped(self) -> int:
        """Records lost: dropped on a full queue, or given up on after retries."""
        return self.shipper.undelivered

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.shipper.put(self.to_row(record))
        except Exception:
            self.handleError(record)

    def to_row(self, record: logging.LogRecord) -> dict[str, Any]:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + (self.formatter or logging.Formatter()).formatException(record.exc_info)
        elif record.stack_info:
            message += "\n" + record.stack_info
        row: dict[str, Any] = {
            "ts": int(record.created * 1_000_000_000),
            "level": record.levelname.lower(),
            "message": message,
        }
        attrs = {"logger": record.name, "code.function": record.funcName, "code.lineno": str(record.lineno)}
        for key, value in record.__dict__.items():
            if key in _RECORD_KEYS or key.startswith("_"):
                continue
            if key in _COLUMNS and value:
                row[key] = str(value)
            else:
                attrs[key] = value if isinstance(value, str) else str(value)
        row["attrs"] = attrs
        return row

    def flush(self, timeout: float = 10.0) -> None:
        self.shipper.flush(timeout)

    def close(self) -> None:
        try:
            self.shipper.close(timeout=5.0)
        finally:
            super().close()
