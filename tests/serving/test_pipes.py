"""The controller's non-blocking pipe ends speak multiprocessing's framing, whatever the message size."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import threading

import numpy as np
import pytest

from workbench.serving.messages import Result, WorkItem
from workbench.serving.pipes import FrameReader, PipeWriter


def test_writer_never_blocks_and_a_plain_connection_reads_everything():
    reader, writer = mp.Pipe(duplex=False)
    loop = asyncio.new_event_loop()
    errors: list[str] = []
    try:
        out = PipeWriter(loop, writer.fileno(), lambda: errors.append("broken"))
        big = np.arange(300_000, dtype=np.float32)  # 1.2 MB: far more than a pipe holds
        for i in range(3):
            out.send(WorkItem(batch_id=i, data=big + i))  # returns at once; the rest waits for the loop
        assert out.buffered > 0
        received: list = []
        thread = threading.Thread(target=lambda: received.extend(reader.recv() for _ in range(3)))
        thread.start()
        loop.run_until_complete(asyncio.wait_for(_until(lambda: out.buffered == 0), 10))
        thread.join(timeout=10)
        assert [m.batch_id for m in received] == [0, 1, 2]
        np.testing.assert_array_equal(received[2].data, big + 2)
        reader.close()
        out.send(WorkItem(batch_id=9, data=big))
        loop.run_until_complete(asyncio.wait_for(_until(lambda: errors), 10))
        assert errors == ["broken"]  # the other end is gone: reported once
    finally:
        loop.close()
        writer.close()


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.001)


def test_reader_returns_whole_messages_then_eof():
    reader, writer = mp.Pipe(duplex=False)
    frames = FrameReader(reader.fileno())
    assert frames.read() == []  # nothing there: no blocking
    small = Result(batch_id=1, data=np.ones((2, 3), np.float32), compute_start=1.0, compute_end=2.0)
    writer.send(small)
    writer.send(small)
    first = frames.read()
    assert [m.batch_id for m in first] == [1, 1]
    np.testing.assert_array_equal(first[0].data, small.data)
    writer.close()
    with pytest.raises(EOFError):
        frames.read()
    reader.close()
