"""The timeline of a build or deploy, laid out for an SVG drawn on the server.

One lane per (host, service) pair, grouped under a header per service; a bar from the host's first
to its last line of the trail; a tick at each error or fatal line; gone hosts marked. Every lane is
a link that filters the trail to its host, so the picture works with JavaScript off. Lanes get
thinner as they get more, so 200 hosts still fit a screen-and-a-bit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flightlog.query.kinds import kind_of
from flightlog.query.timefmt import parse_ns
from flightlog.schema.store import Store

WIDTH = 1200
LABEL_W = 250
RIGHT_PAD = 16
AXIS_H = 26
GROUP_H = 22
MAX_TICKS = 5000
_S = 1_000_000_000
_STEPS_NS = (
    [n * 1_000_000 for n in (1, 2, 5, 10, 20, 50, 100, 200, 500)]
    + [n * _S for n in (1, 2, 5, 10, 15, 30)]
    + [n * 60 * _S for n in (1, 2, 5, 10, 15, 30)]
    + [n * 3600 * _S for n in (1, 2, 3, 6, 12)]
    + [n * 86400 * _S for n in (1, 2, 7, 14, 30)]
)


def error_ticks(store: Store, tenant: str, kind: str, entity_id: str) -> list[tuple[str, str, int, int]]:
    """(host, service, ts_ns, seq) of the trail's error and fatal lines, oldest first, at most MAX_TICKS."""
    k = kind_of(kind)
    result = store.query(
        "SELECT host, service, toUnixTimestamp64Nano(ts), seq FROM trail_lines "
        "WHERE tenant = {tenant:String} AND kind = {kind:String} AND id = {id:String} "
        "AND level IN ('error', 'fatal') ORDER BY ts, seq LIMIT {n:UInt32}",
        {"tenant": tenant, "kind": k.name, "id": entity_id, "n": MAX_TICKS},
    )
    return [(host, service, int(ts), int(seq)) for host, service, ts, seq in result.rows]


def lane_height(lanes: int) -> int:
    if lanes <= 30:
        return 20
    if lanes <= 80:
        return 15
    return 12


def _axis(t0: int, t1: int, plot_x0: float, plot_w: float) -> list[dict[str, Any]]:
    span = max(t1 - t0, 1)
    step = next((s for s in _STEPS_NS if span / s <= 8), _STEPS_NS[-1])
    first = -(-t0 // step) * step
    ticks = []
    for t in range(first, t1 + 1, step):
        when = dt.datetime.fromtimestamp(t // 10**9, dt.UTC)
        label = when.strftime("%H:%M:%S") if step >= 10**9 else when.strftime("%H:%M:%S") + f".{t % 10**9 // 10**6:03d}"
        if step >= 86400 * 10**9:
            label = when.strftime("%m-%d")
        ticks.append({"x": round(plot_x0 + (t - t0) / span * plot_w, 1), "label": label})
    return ticks


def layout(
    summary: dict[str, Any],
    ticks: list[tuple[str, str, int, int]],
    lane_url: Callable[[str], str],
    selected_hosts: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Everything _timeline.html draws, in SVG user units (the SVG scales to the page width)."""
    t0 = parse_ns(summary["first_ts"])
    t1 = max(parse_ns(summary["last_ts"]), t0 + 1)
    plot_x0, plot_w = LABEL_W + 8, WIDTH - LABEL_W - 8 - RIGHT_PAD
    span = t1 - t0

    def x_of(ns: int) -> float:
        return round(plot_x0 + (ns - t0) / span * plot_w, 1)

    by_pair: dict[tuple[str, str], list[int]] = {}
    for host, service, ts_ns, _seq in ticks:
        by_pair.setdefault((host, service), []).append(ts_ns)
    services: dict[str, list[dict[str, Any]]] = {}
    for h in summary["hosts"]:
        services.setdefault(h["service"], []).append(h)
    lane_h = lane_height(len(summary["hosts"]))
    y = AXIS_H
    groups, lanes = [], []
    for service in sorted(services):
        hosts = sorted(services[service], key=lambda h: (h["first_ts"], h["host"]))
        groups.append({"service": service, "y": y, "hosts": len(hosts), "gone": sum(1 for h in hosts if h["gone"])})
        y += GROUP_H
        for h in hosts:
            x1, x2 = x_of(parse_ns(h["first_ts"])), x_of(parse_ns(h["last_ts"]))
            tick_xs = sorted({round(x_of(ns)) for ns in by_pair.get((h["host"], service), [])})
            lanes.append(
                {
                    "host": h["host"],
                    "service": service,
                    "y": y,
                    "h": lane_h,
                    "bar_x": x1,
                    "bar_w": max(round(x2 - x1, 1), 2),
                    "ticks": tick_xs,
                    "errors": h.get("errors", 0),
                    "lines": h["lines"],
                    "gone": h["gone"],
                    "selected": h["host"] in selected_hosts,
                    "href": lane_url(h["host"]),
                    "title": f"{h['host']} ({service}): {h['lines']:,} lines, {h.get('errors', 0):,} errors, "
                    f"{h['first_ts'][11:23]} → {h['last_ts'][11:23]}" + (" · gone" if h["gone"] else ""),
                }
            )
            y += lane_h
    return {
        "width": WIDTH,
        "height": y + 6,
        "label_w": LABEL_W,
        "plot_x0": plot_x0,
        "plot_x1": plot_x0 + plot_w,
        "axis": _axis(t0, t1, plot_x0, plot_w),
        "groups": groups,
        "lanes": lanes,
        "lane_h": lane_h,
    }
