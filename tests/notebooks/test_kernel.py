"""KernelWorkbench, in this process: background steps chained in order, settings checked before anything
starts, the status table, the live figures cut at configuration changes, and the pump that applies
state changes on the event loop's thread."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from workbench.errors import ConfigError
from workbench.ui.kernel import KernelWorkbench, chain

from .conftest import window


def test_chain_runs_steps_in_order_and_stops_at_the_first_failure(session):
    done: list[str] = []
    with ThreadPoolExecutor(2) as pool:
        def step(name: str, fail: bool = False):
            def work() -> str:
                if fail:
                    raise ConfigError(f"{name} failed")
                done.append(name)
                return name
            return lambda: pool.submit(work)

        assert chain(session, [step("a"), step("b"), step("c")]).result(10) == "c"
        assert done == ["a", "b", "c"]

        done.clear()
        failed = chain(session, [step("a"), step("b", fail=True), step("c")])
        with pytest.raises(ConfigError, match="b failed"):
            failed.result(10)
        assert done == ["a"]

    def refuse() -> Future:
        raise ConfigError("not now")

    with pytest.raises(ConfigError, match="not now"):  # the first step's refusal reaches the caller at once
        chain(session, [refuse])


def test_a_cancelled_chain_starts_no_further_step(session):
    first: Future = Future()
    ran: list[str] = []
    overall = chain(session, [lambda: first, lambda: ran.append("second")])
    assert overall.cancel()
    first.set_result("done")
    assert overall.cancelled() and ran == []


def test_settings_are_checked_before_anything_starts(session):
    wb = KernelWorkbench(session)  # no running event loop here: updates apply at once
    assert not session.updates.attached
    with pytest.raises(ConfigError, match="replicas"):
        wb.serve("mlp", replicas=0)
    with pytest.raises(ConfigError, match="unknown serve setting.*colour"):
        wb.serve("mlp", colour="blue")
    with pytest.raises(ConfigError, match="port must be in 0..65535"):
        wb.serve("mlp", port=70000)
    with pytest.raises(ConfigError, match="nothing is served yet"):
        wb.load(rate=10)
    with pytest.raises(ConfigError, match="no load is running"):
        wb.stop("load")
    with pytest.raises(ConfigError, match="stop takes load, serve or all"):
        wb.stop("everything")
    with pytest.raises(ConfigError, match="nothing is being served"):
        wb.apply(max_batch_size=4)
    assert wb.stop() is None  # nothing ran: nothing to stop
    wb.wait(timeout_s=1)  # nothing started: ready at once
    assert session.state.serve.status == "stopped" and not session.tasks.busy()


def test_status_is_a_table_of_what_runs(session):
    table = KernelWorkbench(session).status()
    assert list(table.columns) == ["value"]
    assert table.loc["model", "value"] == "-"
    assert table.loc["server", "value"] == "stopped (local)"
    assert table.loc["load", "value"] == "idle"
    assert "max_batch_size=32" in table.loc["settings", "value"]


def test_phases_cut_the_live_figures_at_each_change(session):
    recent = session.feed.recent
    recent.extend(window(i, latencies_ms=(10.0,) * 50, batch_sizes={1: 50}) for i in range(4))
    recent.append(window(4, latencies_ms=(500.0,) * 50, changes=("max_batch_size 1 → 8",)))  # mixed: left out
    recent.extend(window(i, latencies_ms=(2.0,) * 50, batch_sizes={8: 6}) for i in range(5, 9))
    recent.append(window(9))  # no requests answered: left out
    phases = KernelWorkbench(session).phases()
    assert list(phases["phase"]) == ["start", "max_batch_size 1 → 8"]
    before, after = phases.iloc[0], phases.iloc[1]
    assert 9.9 < before["p99_ms"] < 10.1 and 1.9 < after["p99_ms"] < 2.1
    assert before["rps"] == 100.0 and after["mean_batch_size"] == 8.0
    assert (before["from_s"], before["to_s"], after["from_s"], after["to_s"]) == (0.0, 2.0, 2.5, 4.5)


def test_inside_an_event_loop_changes_wait_for_the_pump_on_the_loops_thread(session):
    seen: list[int] = []

    async def main() -> None:
        wb = KernelWorkbench(session)
        assert session.updates.attached
        posted = threading.Thread(target=session.updates.post, args=(lambda: seen.append(threading.get_ident()),))
        posted.start()
        posted.join(5)
        assert seen == []  # posted from another thread: waits for the pump
        await wb.until(lambda: seen, timeout_s=5)
        with pytest.raises(TimeoutError, match="did not hold within 0.2 s"):
            await wb.until(lambda: False, timeout_s=0.2)
        wb.close()

    asyncio.run(main())
    assert seen == [threading.get_ident()]
    assert session.closed
