"""Syslog listeners over TCP and UDP, started by the app when `syslog_tcp` / `syslog_udp` are set.

TCP: every read is framed (octet counting, LF or NUL), parsed and delivered before the next
read, so a full pipeline (429/503 from `deliver`) slows the sender through TCP itself. A frame
that grows past `max_line_bytes` without ending closes the connection. UDP: datagrams that
arrive in one turn of the event loop go in as one chunk; when the pipeline is full they are
dropped (and logged), as syslog over UDP always may be.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from flightlog.ingest.limits import Limits
from flightlog.ingest.metrics import METRICS
from flightlog.ingest.pipeline import LIMITS, deliver
from flightlog.ingest.protocols import syslog
from flightlog.schema.app_state import DEFAULT_TENANT, EXTRAS, SETTINGS
from flightlog.schema.refusal import Refusal

log = logging.getLogger("flightlog.ingest.syslog")

READ_SIZE = 64 * 1024
UDP_MAX_PENDING = 10_000
RETRY_MAX_SECONDS = 5.0


async def syslog_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    servers: list[asyncio.AbstractServer] = []
    transports: list[asyncio.BaseTransport] = []
    ports: dict[str, int] = {}
    if settings.syslog_tcp:
        server = await start_tcp(app, settings.host, settings.syslog_tcp)
        servers.append(server)
        ports["tcp"] = server.sockets[0].getsockname()[1]
    if settings.syslog_udp:
        transport = await start_udp(app, settings.host, settings.syslog_udp)
        transports.append(transport)
        ports["udp"] = transport.get_extra_info("sockname")[1]
    if ports:
        app[EXTRAS]["syslog"] = ports
        log.info("syslog listening on %s", ", ".join(f"{k.upper()} {settings.host}:{v}" for k, v in ports.items()))
    yield
    for transport in transports:
        transport.close()
    for server in servers:
        server.close()
        await server.wait_closed()


async def deliver_with_retry(app: web.Application, chunk) -> bool:
    """Deliver, waiting out 429/503 (the sender waits on TCP meanwhile); False if never taken."""
    delay = 0.1
    for _ in range(50):
        try:
            await deliver(app, chunk)
            return True
        except Refusal as exc:
            wait = exc.retry_after or delay
            await asyncio.sleep(min(float(wait), RETRY_MAX_SECONDS))
            delay = min(delay * 2, RETRY_MAX_SECONDS)
    return False


async def start_tcp(app: web.Application, host: str, port: int) -> asyncio.AbstractServer:
    limits: Limits = app[LIMITS]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer_host = peer[0] if peer else ""
        buffer = bytearray()
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if data:
                    buffer += data
                    messages = syslog.frames(buffer)
                else:
                    messages = syslog.frames(buffer)
                    if buffer.strip(b"\0\r\n "):
                        messages.append(bytes(buffer))  # the last frame needs no terminator
                    buffer.clear()
                if messages:
                    result = syslog.parse(messages, limits, DEFAULT_TENANT, None, peer_host)
                    app[METRICS].rejected(result.errors)
                    if result.rejected:
                        log.warning(
                            "syslog from %s: %d messages refused: %s",
                            peer_host,
                            result.rejected,
                            result.errors[0].error,
                        )
                    if result.chunk.count and not await deliver_with_retry(app, result.chunk):
                        log.error("syslog from %s: pipeline full, closing the connection", peer_host)
                        return
                if not data:
                    return
                if len(buffer) > limits.max_line_bytes + 16:
                    log.warning(
                        "syslog from %s: a frame passed %d bytes without ending; closing",
                        peer_host,
                        limits.max_line_bytes,
                    )
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, limit=READ_SIZE * 2)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.pending: list[tuple[bytes, str]] = []
        self.flushing = False

    def datagram_received(self, data: bytes, addr) -> None:
        if len(self.pending) >= UDP_MAX_PENDING:
            return  # dropped, as a syslog datagram may always be
        self.pending.append((data, addr[0] if addr else ""))
        if not self.flushing:
            self.flushing = True
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.flush()))

    async def flush(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                by_peer: dict[str, list[bytes]] = {}
                for data, peer in batch:
                    by_peer.setdefault(peer, []).append(data)
                for peer, messages in by_peer.items():
                    result = syslog.parse(messages, self.app[LIMITS], DEFAULT_TENANT, None, peer)
                    try:
                        await deliver(self.app, result.chunk, result.errors)
                    except Refusal as exc:
                        log.warning("syslog UDP: %d messages dropped: %s", result.chunk.count, exc.message)
        finally:
            self.flushing = False


async def start_udp(app: web.Application, host: str, port: int) -> asyncio.BaseTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(app), local_addr=(host, port))
    return transport
