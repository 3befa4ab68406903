"""A line becomes searchable only once its trail, its summary and its host rows hold it.

Ingest inserts into `logs_pending` (migration 0050), whose materialized views write the
correlation tables. The engine commits a table's part before its views' parts, so inserting
into `logs` itself made a line searchable seconds before its trail had it. Here the insert
goes to `logs_pending`, and only when it has returned (every view's part committed) are the
pending partitions moved into `logs`: a metadata operation (parts are hard-linked, not
rewritten; 13–20 ms for a 200k-line batch on a quiet machine, up to ~240 ms under load)
that readers see all at once per partition.

A pending part is committed before its own views' parts too, so moving while another insert
runs could publish that insert's lines early. `Publisher.insert` lets inserts run side by
side and moves only when none is running; once a move is wanted, new inserts wait for it, so
overlapping inserts cannot starve it. This holds within one process (the embedded store has
only one); several `flightlog ingest` processes on one ClickHouse server share `logs_pending`,
and one's move may publish another's batch up to one insert early (docs/correlation.md).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from flightlog.schema.store import Store, StoreError

PENDING_TABLE = "logs_pending"
PUBLISHED_TABLE = "logs"

_PARTITION_ID = re.compile(r"^[0-9A-Za-z_-]+$")


def publish_pending(store: Store) -> int:
    """Move every partition of `logs_pending` into `logs`; returns how many were moved."""
    partitions = store.query(
        "SELECT DISTINCT partition_id FROM system.parts "
        "WHERE database = currentDatabase() AND table = {table:String} AND active",
        {"table": PENDING_TABLE},
    ).rows
    for (partition_id,) in partitions:
        if not _PARTITION_ID.match(partition_id):  # engine-made ids; never pasted unchecked
            raise ValueError(f"unexpected partition id {partition_id!r} in {PENDING_TABLE}")
        store.command(f"ALTER TABLE {PENDING_TABLE} MOVE PARTITION ID '{partition_id}' TO TABLE {PUBLISHED_TABLE}")
    return len(partitions)


class Publisher:
    """Runs inserts into `logs_pending` and publishes their lines once no insert is running."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cond = threading.Condition()
        self._running = 0
        self._move_wanted = False
        self._moves = 0  # move attempts so far
        self._move_error: StoreError | None = None  # how the last attempt failed, if it did

    def insert(self, run: Callable[[], None]) -> None:
        """Run `run` (an insert into `logs_pending`); return once its lines are in `logs`.
        Raises what `run` raised, or StoreError when the move carrying its lines failed; a
        batch retried after either lands once (its deduplication token drops it from
        `logs_pending` and from every view, and the retry's move publishes it)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._move_wanted)
            self._running += 1
        inserted = False
        try:
            run()
            inserted = True
        finally:
            with self._cond:
                self._running -= 1
                if inserted:
                    self._move_wanted = True
                    attempt = self._moves + 1  # the move that will carry these lines
                if self._running == 0 and self._move_wanted:
                    self._move()
        if inserted:
            with self._cond:
                self._cond.wait_for(lambda: self._moves >= attempt)
                if self._move_error is not None:
                    raise StoreError(f"inserted, but not yet moved into {PUBLISHED_TABLE}: {self._move_error}")

    def _move(self) -> None:
        # Called holding the lock: no insert starts while the move runs.
        try:
            publish_pending(self.store)
            self._move_error = None
        except StoreError as exc:
            self._move_error = exc
        finally:
            self._moves += 1
            self._move_wanted = False
            self._cond.notify_all()
