"""The WAL: group commit, its bound, torn tails, fsync modes."""

from __future__ import annotations

import asyncio
import os

import pytest
from flightlog.ingest.wal import Wal


async def test_concurrent_writers_share_one_fsync(tmp_path, monkeypatch):
    calls = []
    real = os.fdatasync

    def counting(fd):
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    wal = Wal(tmp_path, fsync="always")
    wal.start()
    segment = wal.open_segment()

    async def writer(i: int) -> None:
        wal.write(segment, b'{"msg":"%d"}\n' % i)
        await wal.durable()

    await asyncio.gather(*(writer(i) for i in range(50)))
    assert len(calls) < 50 / 5, f"50 concurrent writers took {len(calls)} fsyncs"
    assert wal.fsyncs == len(calls)
    wal.seal(segment)
    await segment.closed.wait()
    await wal.stop()
    assert segment.path.read_bytes().count(b"\n") == 50


@pytest.mark.parametrize("mode", ["interval", "off"])
async def test_without_always_an_acknowledgement_does_not_wait_for_fsync(tmp_path, monkeypatch, mode):
    calls = []
    monkeypatch.setattr(os, "fdatasync", lambda fd: calls.append(fd))
    wal = Wal(tmp_path, fsync=mode)
    wal.start()
    segment = wal.open_segment()
    wal.write(segment, b'{"msg":"x"}\n')
    await wal.durable()
    assert calls == []
    await wal.stop()
    assert (calls != []) == (mode == "interval")


def test_the_wal_refuses_past_its_bound_but_always_takes_one_write(tmp_path):
    wal = Wal(tmp_path, max_bytes=100)
    assert wal.has_room(1000)  # empty: a single oversized chunk is still taken
    wal.bytes = 60
    assert wal.has_room(40)
    assert not wal.has_room(41)


def test_a_torn_last_line_is_cut_off_at_recovery(tmp_path):
    path = tmp_path / "0000000000000001-abcd.ndjson"
    path.write_bytes(b'{"msg":"whole"}\n{"msg":"half')
    wal = Wal(tmp_path)
    assert wal.recover() == [path]
    assert path.read_bytes() == b'{"msg":"whole"}\n'
    assert wal.bytes == len(b'{"msg":"whole"}\n')


def test_an_unknown_fsync_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="always, interval, off"):
        Wal(tmp_path, fsync="sometimes")
