"""Test data: a fleet of builds and deploys across services and hosts, inserted straight into logs.

`make_fleet(store)` writes 5 services x 20 hosts x 50 builds (10 deploys of 5 builds each), with
builds overlapping in time, lines inserted out of order, and pairs of lines sharing a timestamp so
the (ts, seq) order is what decides. It returns every line written, so tests can compute the
expected answer independently of the code under test.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass, field
from typing import Any

NS = 1_000_000_000
SERVICES = ("api", "worker", "scheduler", "gateway", "billing")
LEVEL_CYCLE = ("info", "info", "debug", "warn", "info", "error", "trace", "info", "fatal", "info")


def ts_text(ns: int) -> str:
    """Nanoseconds → the `YYYY-MM-DD HH:MM:SS.fffffffff` text ClickHouse reads for DateTime64(9)."""
    seconds, frac = divmod(ns, NS)
    whole = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return whole.strftime("%Y-%m-%d %H:%M:%S") + f".{frac:09d}"


def rfc3339(ns: int) -> str:
    return ts_text(ns).replace(" ", "T") + "Z"


_seq = iter(range(1, 10**12))


def make_line(ts_ns: int | None = None, **fields: Any) -> dict[str, Any]:
    """One row for `logs`; anything not given gets a plain default. `ts_ns` is kept for tests."""
    ts_ns = ts_ns if ts_ns is not None else time.time_ns() - 60 * NS
    row = {
        "ts": ts_text(ts_ns),
        "observed_ts": ts_text(ts_ns),
        "seq": next(_seq),
        "tenant": "default",
        "service": "api",
        "host": "host-00",
        "level": "info",
        "message": "hello",
        "build_id": "",
        "deploy_id": "",
        "trace_id": "",
        "span_id": "",
        "request_id": "",
        "attrs": {},
    }
    row.update(fields)
    row["ts_ns"] = ts_ns
    return row


def insert(store, lines: list[dict[str, Any]]) -> None:
    store.insert_rows("logs", [{k: v for k, v in line.items() if k != "ts_ns"} for line in lines])


def host_name(service_index: int, n: int) -> str:
    return f"{SERVICES[service_index]}-{n:02d}"


@dataclass
class Fleet:
    lines: list[dict[str, Any]] = field(default_factory=list)

    def of(self, column: str, value: str) -> list[dict[str, Any]]:
        """The lines carrying column=value, in (ts, seq) order."""
        return sorted((line for line in self.lines if line[column] == value), key=lambda r: (r["ts_ns"], r["seq"]))

    @property
    def hosts(self) -> list[str]:
        return sorted({line["host"] for line in self.lines})


def make_fleet(
    store,
    builds: int = 50,
    lines_per_build: int = 40,
    base_ns: int | None = None,
    tenant: str = "default",
    seed: int = 7,
) -> Fleet:
    """Builds b000..b049 on 20 hosts (4 per service); deploy d00N ships builds 5N..5N+4.

    Build b's lines start at base + b*10s and run 100 ms apart, so neighbouring builds overlap;
    lines 2k and 2k+1 share a timestamp. Only even lines carry the deploy id.
    """
    rng = random.Random(seed)
    base_ns = base_ns if base_ns is not None else (time.time_ns() // NS - 3 * 3600) * NS
    fleet = Fleet()
    for b in range(builds):
        build_id = f"b{b:03d}"
        deploy_id = f"d{b // 5:03d}"
        for i in range(lines_per_build):
            s = (i + b) % len(SERVICES)
            host = host_name(s, (i // len(SERVICES) + b) % 4)
            ts = base_ns + b * 10 * NS + (i // 2) * 100_000_000 + 123
            fleet.lines.append(
                make_line(
                    ts,
                    tenant=tenant,
                    service=SERVICES[s],
                    host=host,
                    level=LEVEL_CYCLE[(i // len(SERVICES) + b) % len(LEVEL_CYCLE)],
                    message=f"step {i} of build {build_id} on {host}",
                    build_id=build_id,
                    deploy_id=deploy_id if i % 2 == 0 else "",
                    trace_id=f"t{b:03d}{i % 4}",
                    request_id=f"r{b:03d}-{i}",
                    attrs={"step": str(i)},
                )
            )
    shuffled = fleet.lines[:]
    rng.shuffle(shuffled)
    for start in range(0, len(shuffled), 500):
        insert(store, shuffled[start : start + 500])
    return fleet
