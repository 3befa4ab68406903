"""The statuses a build or deploy record has, and the spellings read as each.

One list for the writers (flightlog.ingest.cicd) and the readers (flightlog.query.build_records);
migration 0070 spells the same synonyms for log lines' `build.status` (a test checks they agree).
"""

from __future__ import annotations

STATUSES = ("queued", "running", "success", "failure", "cancelled")
FINAL_STATUSES = frozenset({"success", "failure", "cancelled"})

STATUS_SYNONYMS: dict[str, str] = {
    "queued": "queued", "pending": "queued", "waiting": "queued", "created": "queued",
    "running": "running", "started": "running", "in_progress": "running",
    "success": "success", "succeeded": "success", "passed": "success", "ok": "success",
    "failure": "failure", "failed": "failure", "error": "failure",
    "cancelled": "cancelled", "canceled": "cancelled", "aborted": "cancelled", "skipped": "cancelled",
}
