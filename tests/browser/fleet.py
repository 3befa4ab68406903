"""A build across 3 services x 12 hosts, for the browser test and for looking at the pages."""

from __future__ import annotations

import time

from tests.query.data import NS, insert, make_line

SERVICES = ("api", "worker", "gateway")


def host_of(service: str, n: int) -> str:
    return f"{service}-{n:02d}"


def make_build(store, build_id: str = "B1", services=SERVICES, hosts_per_service: int = 12, lines_per_host: int = 8):
    """Each host logs `lines_per_host` lines of the build, hosts starting one after another; every
    fifth host hits an error; the first host of each service has been silent for an hour (gone)."""
    base = time.time_ns() - 3600 * NS - 30 * 60 * NS
    lines = []
    for s, service in enumerate(services):
        for n in range(hosts_per_service):
            host = host_of(service, n)
            start = base + (s * hosts_per_service + n) * 20 * NS
            for i in range(lines_per_host):
                level = "error" if (n % 5 == 4 and i == lines_per_host - 2) else "info"
                lines.append(
                    make_line(
                        start + i * 3 * NS,
                        build_id=build_id,
                        service=service,
                        host=host,
                        level=level,
                        message=f"{service} step {i} on {host}",
                        deploy_id="D1" if service == "gateway" and i == lines_per_host - 1 else "",
                    )
                )
            if n != 0:  # the others are still talking: not gone
                lines.append(make_line(time.time_ns() - 30 * NS, service=service, host=host, message="heartbeat"))
    insert(store, lines)
    return lines
