"""The dynamic batcher as a plain unit, driven by an injected clock: no sleeps, no processes."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from workbench.serving.batcher import DynamicBatcher


@dataclass
class Item:
    rows: int
    name: str = ""
    cancelled: bool = False


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, ms: float) -> None:
        self.now += ms / 1000.0


def make(**kwargs) -> tuple[DynamicBatcher, Clock]:
    clock = Clock()
    return DynamicBatcher(clock=clock, **kwargs), clock


def test_a_batch_closes_when_full():
    batcher, _ = make(max_batch_size=4, max_delay_ms=50)
    for i in range(3):
        batcher.add(Item(1, f"r{i}"))
    assert batcher.next_batch() is None  # not full, oldest has not waited
    batcher.add(Item(1, "r3"))
    batch = batcher.next_batch()
    assert [i.name for i in batch] == ["r0", "r1", "r2", "r3"]
    assert len(batcher) == 0 and batcher.rows == 0


def test_a_batch_closes_when_its_oldest_request_has_waited_max_delay():
    batcher, clock = make(max_batch_size=32, max_delay_ms=10)
    batcher.add(Item(1, "a"))
    clock.advance_ms(6)
    batcher.add(Item(2, "b"))
    assert abs(batcher.due_in() - 0.004) < 1e-9
    clock.advance_ms(3.9)
    assert batcher.next_batch() is None
    clock.advance_ms(0.1)
    assert [i.name for i in batcher.next_batch()] == ["a", "b"]


def test_zero_delay_means_no_waiting():
    batcher, _ = make(max_batch_size=32, max_delay_ms=0)
    batcher.add(Item(1, "a"))
    batcher.add(Item(1, "b"))
    assert batcher.due_in() == 0.0
    assert [i.name for i in batcher.next_batch()] == ["a", "b"]


def test_requests_of_different_sizes_combine_in_order_without_reordering():
    batcher, _ = make(max_batch_size=8, max_delay_ms=0)
    for rows, name in [(3, "a"), (4, "b"), (2, "c"), (1, "d")]:
        batcher.add(Item(rows, name))
    first = batcher.next_batch()
    assert [i.name for i in first] == ["a", "b"]  # c (2 rows) does not fit in the 1 left: stop, no skipping
    second = batcher.next_batch()
    assert [i.name for i in second] == ["c", "d"]
    assert batcher.next_batch() is None  # never an empty batch


def test_an_item_larger_than_the_batch_travels_alone():
    batcher, _ = make(max_batch_size=4, max_delay_ms=0)
    batcher.add(Item(6, "big"))
    batcher.add(Item(1, "small"))
    assert [i.name for i in batcher.next_batch()] == ["big"]
    assert [i.name for i in batcher.next_batch()] == ["small"]


def test_cancelled_items_are_dropped_and_never_make_an_empty_batch():
    batcher, _ = make(max_batch_size=4, max_delay_ms=0)
    a, b, c = Item(1, "a", cancelled=True), Item(1, "b"), Item(1, "c", cancelled=True)
    for item in (a, b, c):
        batcher.add(item)
    assert [i.name for i in batcher.next_batch()] == ["b"]
    assert batcher.rows == 0
    batcher.add(Item(2, "x", cancelled=True))
    assert batcher.next_batch() is None
    assert len(batcher) == 0


def test_disabled_batching_sends_each_request_alone_at_once():
    batcher, _ = make(max_batch_size=32, max_delay_ms=100, enabled=False)
    batcher.add(Item(2, "a"))
    batcher.add(Item(1, "b"))
    assert [i.name for i in batcher.next_batch()] == ["a"]
    assert [i.name for i in batcher.next_batch()] == ["b"]


def test_configure_takes_effect_on_the_next_batch():
    batcher, clock = make(max_batch_size=32, max_delay_ms=100)
    for i in range(4):
        batcher.add(Item(1, str(i)))
    assert batcher.next_batch() is None
    batcher.configure(max_batch_size=2)
    assert len(batcher.next_batch()) == 2
    batcher.configure(max_batch_size=32, max_delay_ms=0)
    assert len(batcher.next_batch()) == 2


def test_drain_returns_live_items_and_empties():
    batcher, _ = make()
    batcher.add(Item(1, "a"))
    batcher.add(Item(1, "b", cancelled=True))
    assert [i.name for i in batcher.drain()] == ["a"]
    assert batcher.rows == 0 and batcher.due_in() is None


@given(sizes=st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=60),
       max_batch=st.integers(min_value=1, max_value=16))
def test_every_item_comes_out_once_in_order_within_the_size(sizes, max_batch):
    batcher, _ = make(max_batch_size=max_batch, max_delay_ms=0)
    items = [Item(rows, str(i)) for i, rows in enumerate(sizes)]
    for item in items:
        batcher.add(item)
    out = []
    while (batch := batcher.next_batch()) is not None:
        assert batch, "never an empty batch"
        total = sum(i.rows for i in batch)
        assert total <= max_batch or len(batch) == 1
        out.extend(batch)
    assert out == items
