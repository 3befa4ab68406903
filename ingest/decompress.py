"""Request bodies inflated by us, within a bound, with errors a client can act on.

aiohttp can inflate bodies itself, but it accepts a truncated gzip stream silently (the
client's last lines vanish without a word), so the app turns that off (web/server.py) and
every body comes through here: a bomb stops at the limit, a cut stream is a 400.

The work is linear in the body: a stream of many members (gzip) or frames (zstd) is walked
with an offset, never by copying what is left after each member (a body of 400,000 empty
gzip members took 17 s that way). Tiny members still cost a decoder each, so a body may
carry only `MEMBERS_FREE` members plus one per `BYTES_PER_MEMBER` bytes of output. Large
bodies are inflated in a worker thread (`inflate`), so the event loop keeps answering.
"""

from __future__ import annotations

import asyncio
import zlib
from concurrent.futures import ThreadPoolExecutor

from flightlog.schema.refusal import Refusal

try:
    from compression import zstd  # Python 3.14
except ImportError:  # pragma: no cover - depends on the Python version
    from backports import zstd

SUPPORTED = ("gzip", "x-gzip", "deflate", "zstd", "identity")
# Bodies at least this large (as sent) are inflated off the event loop.
OFF_LOOP_BYTES = 64 * 1024
# A decoder starts on this much input and doubles it while its member goes on, so the input
# handed to it past a member's end (copied back as `unused_data`) is never more than the
# member itself plus this.
FIRST_SLICE = 64
MEMBERS_FREE = 1000
BYTES_PER_MEMBER = 128

_inflaters = ThreadPoolExecutor(max_workers=2, thread_name_prefix="inflate")


async def inflate(data: bytes, content_encoding: str, limit: int) -> bytes:
    """`decompress`, in a worker thread when the body is large enough to hold up the loop."""
    if len(data) < OFF_LOOP_BYTES:
        return decompress(data, content_encoding, limit)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_inflaters, decompress, data, content_encoding, limit)


def decompress(data: bytes, content_encoding: str, limit: int) -> bytes:
    """Undo every coding in `content_encoding` (applied in order, so undone in reverse)."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in reversed(codings):
        if coding in ("gzip", "x-gzip"):
            data = _inflate_zlib(data, zlib.MAX_WBITS | 16, "gzip", limit)
        elif coding == "deflate":
            data = _inflate_deflate(data, limit)
        elif coding == "zstd":
            data = _inflate_zstd(data, limit)
        elif coding != "identity":
            raise Refusal(415, f"Content-Encoding {coding!r} is not supported; use one of {', '.join(SUPPORTED)}")
    if len(data) > limit:
        raise too_large(limit)
    return data


def too_large(limit: int) -> Refusal:
    return Refusal(413, f"body is larger than {limit} bytes after decompression; send smaller batches")


def _count_member(members: int, out_size: int, name: str) -> int:
    members += 1
    if members > MEMBERS_FREE + out_size // BYTES_PER_MEMBER:
        raise Refusal(
            400,
            f"{name} body has more than {members - 1} members for {out_size} bytes of content; "
            f"compress each request as one stream",
        )
    return members


def _only_padding(view: memoryview) -> bool:
    return not bytes(view).strip(b"\0")


def _inflate_zlib(data: bytes, wbits: int, name: str, limit: int) -> bytes:
    view = memoryview(data)
    out = bytearray()
    pos, members = 0, 0
    while True:
        inflater = zlib.decompressobj(wbits)
        size = FIRST_SLICE
        while True:
            piece = view[pos : pos + size]
            try:
                out += inflater.decompress(piece, limit + 1 - len(out))
            except zlib.error as exc:
                raise Refusal(400, f"body is not valid {name} data: {exc}") from None
            if len(out) > limit or inflater.unconsumed_tail:
                raise too_large(limit)
            pos += len(piece) - len(inflater.unused_data)
            if inflater.eof:
                break
            if pos >= len(view):
                raise Refusal(400, f"{name} body is truncated: the stream ends before its end marker")
            size *= 2
        members = _count_member(members, len(out), name)
        # gzip allows several members back to back; each is inflated in turn. Zero bytes
        # after the last one are padding some clients add.
        if pos >= len(view) or (view[pos] == 0 and _only_padding(view[pos:])):
            return bytes(out)


def _inflate_deflate(data: bytes, limit: int) -> bytes:
    # HTTP "deflate" is the zlib format, but some clients send raw deflate; accept both.
    try:
        return _inflate_zlib(data, zlib.MAX_WBITS, "deflate", limit)
    except Refusal as exc:
        if exc.status != 400 or data[:1] == b"\x78":
            raise
        return _inflate_zlib(data, -zlib.MAX_WBITS, "deflate", limit)


def _inflate_zstd(data: bytes, limit: int) -> bytes:
    view = memoryview(data)
    out = bytearray()
    pos, members = 0, 0
    while pos < len(view):
        inflater = zstd.ZstdDecompressor()
        size = FIRST_SLICE
        while True:
            piece = view[pos : pos + size]
            try:
                out += inflater.decompress(piece, max_length=limit + 1 - len(out))
            except zstd.ZstdError as exc:
                raise Refusal(400, f"body is not valid zstd data: {exc}") from None
            if len(out) > limit:
                raise too_large(limit)
            pos += len(piece) - len(inflater.unused_data)
            if inflater.eof:
                break
            if not inflater.needs_input:
                raise too_large(limit)
            if pos >= len(view):
                raise Refusal(400, "zstd body is truncated: the frame ends early")
            size *= 2
        members = _count_member(members, len(out), "zstd")
    return bytes(out)
