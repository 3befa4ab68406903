"""Bad input, each answered with a 4xx and a message (or a closed connection on raw TCP); the
server stays up, memory stays bounded, and the good lines of the same request are kept."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import socket
import time
import tracemalloc
import zlib

import cramjam
import orjson
import pytest
from flightlog.ingest.decompress import decompress
from flightlog.schema.refusal import Refusal
from flightlog.web.server import create_app

from tests.security.conftest import wait_for_rows

MB = 1024 * 1024


def _ndjson(*objects) -> bytes:
    return b"\n".join(o if isinstance(o, bytes) else orjson.dumps(o) for o in objects)


async def _post(client, path, body, **headers):
    resp = await client.post(path, data=body, headers=headers)
    text = (await resp.read()).decode("utf-8", "replace")  # OTLP answers errors in protobuf
    assert resp.status < 500, (path, resp.status, text)
    return resp.status, text


async def _still_up(client):
    assert (await client.get("/healthz")).status == 200


async def _messages(store, want: int) -> set[str]:
    await wait_for_rows(store, "SELECT count() FROM logs", want)
    return {row[0] for row in store.query("SELECT message FROM logs").rows}


# --- compression ------------------------------------------------------------------------------


async def test_truncated_gzip_is_a_400_that_says_so(app_client):
    body = gzip.compress(_ndjson({"msg": "a"}, {"msg": "b"}) * 100)
    status, text = await _post(app_client, "/api/v1/logs", body[: len(body) // 2], **{"Content-Encoding": "gzip"})
    assert status == 400 and "truncated" in text
    await _still_up(app_client)


def _bomb(inflated: int) -> bytes:
    """gzip of `inflated` zero bytes, made a megabyte at a time."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(MB)
    parts = [deflater.compress(block) for _ in range(inflated // MB)]
    return b"".join(parts) + deflater.flush()


def test_a_gzip_bomb_stops_at_the_limit_without_inflating_it_all():
    bomb = _bomb(256 * MB)  # ~250 KB on the wire
    double = gzip.compress(bomb, 9)  # gzip of the gzip: a few KB
    assert len(double) < 16 * 1024
    for body, coding in ((bomb, "gzip"), (double, "gzip, gzip")):
        tracemalloc.start()
        started = time.monotonic()
        with pytest.raises(Refusal) as refused:
            decompress(body, coding, 4 * MB)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert refused.value.status == 413
        assert peak < 24 * MB, f"inflated {peak} bytes for a 4 MB limit"
        assert time.monotonic() - started < 2


async def test_a_gzip_bomb_over_http_is_a_413(aiohttp_client, settings, store):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, max_body_bytes=4 * MB), store=store))
    double = gzip.compress(_bomb(64 * MB), 9)
    for path in ("/api/v1/logs", "/loki/api/v1/push", "/v1/logs", "/_bulk"):
        status, text = await _post(client, path, double, **{"Content-Encoding": "gzip, gzip"})
        assert status == 413 and "larger than" in text, (path, text)
    await _still_up(client)


# --- lines ------------------------------------------------------------------------------------


async def test_a_10_mb_line_is_refused_and_its_neighbours_kept(app_client, store):
    huge = orjson.dumps({"msg": "x" * (10 * MB)})
    status, text = await _post(app_client, "/api/v1/logs", _ndjson({"msg": "before"}, huge, {"msg": "after"}))
    body = orjson.loads(text)
    assert status == 200 and body["accepted"] == 2 and body["rejected"] == 1
    assert body["errors"][0]["line"] == 2 and "bytes" in body["errors"][0]["error"]
    status, text = await _post(app_client, "/api/v1/logs", b"y" * (10 * MB) + b"\nshort line\n",
                               **{"Content-Type": "text/plain"})
    assert status == 200 and orjson.loads(text)["accepted"] == 1
    assert {"before", "after", "short line"} <= await _messages(store, 3)


async def test_invalid_utf8_is_refused_or_replaced_never_a_crash(app_client, store):
    bad = b'{"msg": "caf\xe9 \xff\xfe"}'
    status, text = await _post(app_client, "/api/v1/logs", _ndjson({"msg": "good json"}, bad))
    assert status == 200 and orjson.loads(text)["accepted"] >= 1
    status, text = await _post(app_client, "/api/v1/logs", b"good text\n\xff\xfe bad \xc3\x28 text\n",
                               **{"Content-Type": "text/plain"})
    assert status == 200
    messages = await _messages(store, 3)
    assert {"good json", "good text"} <= messages
    for message in messages:
        message.encode("utf-8")  # whatever was stored is valid UTF-8


async def test_json_nested_10000_deep_is_refused_and_its_neighbours_kept(app_client, store):
    deep = b'{"msg":"deep","a":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    deep_object = b'{"msg":"deep2","a":' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"}"
    status, text = await _post(app_client, "/api/v1/logs", _ndjson({"msg": "ok"}, deep, deep_object))
    body = orjson.loads(text)
    assert status == 200 and body["accepted"] == 1 and body["rejected"] == 2
    # and as a whole JSON body on the other protocols
    for path, ctype in (("/v1/logs", "application/json"), ("/loki/api/v1/push", "application/json")):
        status, text = await _post(app_client, path, b"[" * 10_000 + b"]" * 10_000, **{"Content-Type": ctype})
        assert 400 <= status < 500, (path, text)
    assert "ok" in await _messages(store, 1)


async def test_a_line_nested_within_the_limit_is_stored(app_client, store):
    nested = b'{"msg":"nested 90","a":' + b"[" * 90 + b"]" * 90 + b"}"
    status, text = await _post(app_client, "/api/v1/logs", nested)
    assert status == 200 and orjson.loads(text)["accepted"] == 1
    assert "nested 90" in await _messages(store, 1)


async def test_a_line_with_10000_attributes_is_refused_with_the_limit_named(app_client, store):
    wide = {"msg": "wide", **{f"k{i}": "v" for i in range(10_000)}}
    status, text = await _post(app_client, "/api/v1/logs", _ndjson({"msg": "narrow"}, wide))
    body = orjson.loads(text)
    assert status == 200 and body["accepted"] == 1 and body["rejected"] == 1
    assert "256" in body["errors"][0]["error"]
    assert "narrow" in await _messages(store, 1)


@pytest.mark.parametrize(
    "ts",
    [b"1" + b"0" * 30, -1, b"-1" + b"0" * 20, b"1e400", "NaN", "nan", "Infinity", "-5", "9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z",
     "2262-04-12T00:00:00Z", "1969-12-31T23:59:59Z", "1e400", 1.5e300, "", "not a time", True, [], {}],
)
async def test_timestamps_out_of_range_negative_or_nan_never_crash(app_client, store, ts):
    odd = b'{"msg":"odd","ts":' + (ts if isinstance(ts, bytes) else orjson.dumps(ts)) + b"}"
    status, text = await _post(app_client, "/api/v1/logs", _ndjson({"msg": "good", "ts": 1795867200}, odd))
    body = orjson.loads(text)
    assert status == 200 and body["accepted"] >= 1
    if body["rejected"]:
        assert body["errors"][0]["line"] == 2 and body["errors"][0]["error"]
    # every line acknowledged is stored (none vanishes to the engine or the retention TTL)
    assert await wait_for_rows(store, "SELECT count() FROM logs", body["accepted"], timeout=5) == body["accepted"]
    years = store.query("SELECT min(toYear(ts)), max(toYear(ts)) FROM logs").rows[0]
    assert 1970 <= years[0] <= years[1] <= 2262


async def test_nan_and_infinity_literals_are_invalid_json_lines(app_client):
    status, text = await _post(app_client, "/api/v1/logs", b'{"msg":"ok"}\n{"msg":"n","ts":NaN}\n{"ts":-Infinity}')
    body = orjson.loads(text)
    assert status == 200 and body["accepted"] == 1 and body["rejected"] == 2


# --- bodies the protocols cannot read ---------------------------------------------------------

INGEST_PATHS = ("/api/v1/logs", "/v1/logs", "/loki/api/v1/push", "/_bulk")


async def test_an_empty_body_is_a_400_on_every_ingest_path(app_client):
    for path in INGEST_PATHS:
        for ctype in ("application/json", "application/x-protobuf", "application/x-ndjson"):
            status, text = await _post(app_client, path, b"", **{"Content-Type": ctype})
            if path == "/v1/logs" and ctype == "application/x-protobuf":
                # zero bytes are a valid, empty ExportLogsServiceRequest: OTLP answers 200, nothing stored
                assert status == 200
                continue
            assert 400 <= status < 500 and text.strip(), (path, ctype, status, text)


async def test_a_wrong_content_type_is_a_4xx_with_a_message(app_client):
    cases = [
        ("/v1/logs", "text/html", b"<html>not otlp</html>"),
        ("/v1/logs", "application/json", b"<html>not json</html>"),
        ("/loki/api/v1/push", "application/xml", b"<push/>"),
        ("/api/v1/logs", "application/x-protobuf", b"\x0a\x03abc"),
        ("/_bulk", "image/png", b"\x89PNG\r\n"),
    ]
    for path, ctype, body in cases:
        status, text = await _post(app_client, path, body, **{"Content-Type": ctype})
        assert 400 <= status < 500 and text.strip(), (path, ctype, status, text)


GARBAGE = [b"\xff" * 64, b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x05abc", b"\x08" + b"\xff" * 20, bytes(range(256)),
           b"\x12\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"]


async def test_garbage_protobuf_is_a_400_on_otlp_and_loki(app_client):
    for body in GARBAGE:
        status, text = await _post(app_client, "/v1/logs", body, **{"Content-Type": "application/x-protobuf"})
        assert 400 <= status < 500, (body, status, text)
        for wire in (body, bytes(cramjam.snappy.compress_raw(body))):
            status, text = await _post(app_client, "/loki/api/v1/push", wire,
                                       **{"Content-Type": "application/x-protobuf"})
            assert 400 <= status < 500, (wire, status, text)
    await _still_up(app_client)


async def test_a_snappy_body_that_lies_about_its_length_is_refused(app_client):
    real = bytes(cramjam.snappy.compress_raw(b"x" * 100_000))
    _, pos = _uvarint_end(real)
    lies = [
        _uvarint(10) + real[pos:],  # says 10 bytes, holds 100,000
        _uvarint(1 << 40) + real[pos:],  # says a terabyte
        _uvarint(200_000) + real[pos:],  # says more than it holds
        _uvarint(64 * MB - 1) + b"\x00",  # says just under the limit, holds nothing
    ]
    for body in lies:
        status, text = await _post(app_client, "/loki/api/v1/push", body, **{"Content-Type": "application/x-protobuf"})
        assert status in (400, 413), (status, text)
    await _still_up(app_client)


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _uvarint_end(buf: bytes) -> tuple[int, int]:
    pos = 0
    while buf[pos] & 0x80:
        pos += 1
    return 0, pos + 1


# --- syslog TCP -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_syslog_tcp_with_a_bogus_octet_count_is_closed_and_the_good_frames_kept(aiohttp_client, settings, store):
    port = _free_port()
    settings = dataclasses.replace(settings, syslog_tcp=port, max_line_bytes=64 * 1024)
    client = await aiohttp_client(create_app(settings, store=store))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    good = b"<13>1 2026-11-28T12:00:00Z host app - - - good frame"
    writer.write(b"%d %s" % (len(good), good))
    writer.write(b"99999999999 <13>bogus count")  # claims ~100 GB
    await writer.drain()
    try:
        for _ in range(200):
            writer.write(b"z" * 1024)  # past max_line_bytes: the server must hang up
            await writer.drain()
            await asyncio.sleep(0)
    except ConnectionError:
        pass
    try:
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    except ConnectionResetError:
        pass  # closed with our bytes unread: a reset
    writer.close()
    assert "good frame" in await _messages(store, 1)
    # a non-number where the count should be is just a line, and garbage frames do not stop the rest
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"12abc <13>not counted\n\xff\xfe\x00<999>bad pri\n-5 <13>negative\n<13>after garbage\n")
    await writer.drain()
    writer.close()
    assert any("after garbage" in m for m in await _messages(store, 2))
    await _still_up(client)


# --- slow clients -----------------------------------------------------------------------------


async def _raw(client, payload_parts, pause: float, total: float) -> tuple[bytes, float]:
    """Send `payload_parts` one at a time, `pause` apart; → (what came back, seconds until closed)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    started = time.monotonic()
    received = bytearray()

    async def read_all():
        # A server that answers and closes while bytes are still coming in resets the
        # connection; what was read before the reset is the answer.
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received.extend(chunk)

    reading = asyncio.create_task(read_all())
    try:
        for part in payload_parts:
            # Stop sending once an answer came: a write after the server closed draws a reset,
            # and a reset can discard an answer not read yet (on a busy machine, it did).
            if reading.done() or received or time.monotonic() - started > total:
                break
            writer.write(part)
            try:
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(pause)
        await asyncio.wait_for(reading, total)
    finally:
        writer.close()
    return bytes(received), time.monotonic() - started


async def test_headers_trickling_in_are_cut_off(app_client):
    head = b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    parts = [head[i : i + 1] for i in range(len(head))]
    received, took = await _raw(app_client, parts, 0.05, 8)
    assert took < 4, f"a client trickling headers held the connection {took:.1f} s (header_timeout is 1 s)"
    assert not received.startswith(b"HTTP/1.1 2")
    await _still_up(app_client)


async def test_a_body_trickling_in_is_answered_408(app_client):
    for path in ("/api/v1/logs", "/api/v1/sql", "/loki/api/v1/push"):
        head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 100000\r\n\r\n").encode()
        parts = [head] + [b" "] * 400
        received, took = await _raw(app_client, parts, 0.05, 8)
        assert received.startswith(b"HTTP/1.1 408"), (path, received[:200])
        assert took < 5, f"{path}: the connection stayed open {took:.1f} s"
    await _still_up(app_client)
