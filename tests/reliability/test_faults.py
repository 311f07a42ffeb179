"""Faults under real load, short versions of ``benchmarks/reliability/faults.py`` (a few seconds each).

Each test starts a real Server with real worker processes behind the real HTTP API, drives it with the
real load generator (a spawned process) at a steady open-loop rate, injects one fault, and checks the
accounting: every request sent was answered (``lost == 0``), every failure carried a clear error, the
service healed (full strength, healthy, a request succeeds), and no process was left behind.
``tests/serving/test_faults.py`` covers the same mechanisms request by request, without load.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.reliability.faults import FAULTS, FaultResult, run_fault
from workbench.testing import make_artifact

pytestmark = pytest.mark.slow

EXAMPLE = np.ones((1, 4), np.float32)
SHORT = {"seconds": 3.0, "fault_at_s": 1.0, "rate": 100.0}
#: faults one retry hides completely: the victim's batches are retried on a live replica
ONE_VICTIM = ["sigkill_one", "sigterm_one", "kill_stage", "hang_one"]
SEVERAL_VICTIMS = ["sigkill_all_but_one", "sigkill_all"]


@pytest.fixture(scope="module")
def sleepy(tmp_path_factory):
    """An echo model of two layers (so it can be cut into two pipeline stages) sleeping 2 ms per batch each."""
    return make_artifact("sleepy", tmp_path_factory.mktemp("faults") / "sleepy", ms=2, shape=(4,), layers=2)


def assert_accounted(r: FaultResult) -> None:
    assert r.sent > 0 and r.lost == 0, r
    assert r.failed_unclear == 0, r.errors_by_kind
    assert r.ok + r.failed_clear == r.sent, r
    assert r.leftover_pids == [], "processes left running"


@pytest.mark.parametrize("name", ONE_VICTIM)
def test_one_victim_costs_no_request_and_is_replaced(name, sleepy):
    r = run_fault(name, sleepy, example=EXAMPLE, **SHORT)
    assert_accounted(r)
    assert r.ok == r.sent and not r.errors_by_kind, r.errors_by_kind  # its batches were retried elsewhere
    assert r.server_ok == r.ok + 1  # every answer the server gave reached the client (+1: the generator's probe)
    assert r.full_strength_s is not None and r.full_strength_s < 30, "the victim was not replaced"
    assert r.healthy_after


@pytest.mark.parametrize("name", SEVERAL_VICTIMS)
def test_several_victims_at_once_lose_nothing_and_heal(name, sleepy):
    r = run_fault(name, sleepy, example=EXAMPLE, **SHORT)
    assert_accounted(r)  # requests wait for new workers; any that pass their deadline get a 504
    assert r.full_strength_s is not None and r.full_strength_s < 30, "the pool did not come back to full strength"
    assert r.healthy_after


def test_killing_the_load_generator_ends_its_run_clearly_and_the_server_serves_the_next(sleepy):
    r = run_fault("kill_loadgen", sleepy, example=EXAMPLE, **SHORT)
    assert r.run_error is not None and "exited unexpectedly (exit code -9)" in r.run_error
    # the generator's counters died with it: the server's records account for what it had sent
    assert r.sent > 0 and r.lost == 0, r
    assert r.service_back_s is not None, "requests of the dead generator stayed in the server"
    assert r.next_run_ok and r.healthy_after
    assert r.leftover_pids == []


@pytest.mark.parametrize("name", ["server_close", "server_close_inprocess"])
def test_closing_the_server_under_load_ends_every_request_and_hangs_nothing(name, sleepy):
    r = run_fault(name, sleepy, example=EXAMPLE, **SHORT)
    assert_accounted(r)
    assert r.failed_clear > 0 and r.run_error is None  # the generator ran its schedule out and ended by itself
    assert r.server_ok == r.ok + 1  # requests in flight at the close were answered, not dropped
    assert r.stop_s is not None and r.stop_s < 10


def test_every_fault_of_the_benchmark_is_tested():
    tested = set(ONE_VICTIM) | set(SEVERAL_VICTIMS) | {"kill_loadgen", "server_close", "server_close_inprocess"}
    assert tested == set(FAULTS)
