"""Request bodies inflated by us, within a bound, with errors a client can act on.

aiohttp can inflate bodies itself, but it accepts a truncated gzip stream silently (the
client's last lines vanish without a word), so the app turns that off (web/server.py) and
every body comes through here: a bomb stops at the limit, a cut stream is a 400.
"""

from __future__ import annotations

import zlib

from flightlog.schema.refusal import Refusal

try:
    from compression import zstd  # Python 3.14
except ImportError:  # pragma: no cover - depends on the Python version
    from backports import zstd

SUPPORTED = ("gzip", "x-gzip", "deflate", "zstd", "identity")


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


def _inflate_zlib(data: bytes, wbits: int, name: str, limit: int) -> bytes:
    out = bytearray()
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise Refusal(400, f"body is not valid {name} data: {exc}") from None
        if len(out) > limit:
            raise too_large(limit)
        if not inflater.eof:
            if inflater.unconsumed_tail:
                raise too_large(limit)
            raise Refusal(400, f"{name} body is truncated: the stream ends before its end marker")
        # gzip allows several members back to back; each is inflated in turn.
        data = inflater.unused_data
        if not data.strip(b"\0"):
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
    out = bytearray()
    while data:
        inflater = zstd.ZstdDecompressor()
        try:
            out += inflater.decompress(data, max_length=limit + 1 - len(out))
        except zstd.ZstdError as exc:
            raise Refusal(400, f"body is not valid zstd data: {exc}") from None
        if len(out) > limit:
            raise too_large(limit)
        if not inflater.eof:
            if not inflater.needs_input:
                raise too_large(limit)
            raise Refusal(400, "zstd body is truncated: the frame ends early")
        data = inflater.unused_data
    return bytes(out)
