"""``%workbench tune``: its options become the Tune settings, a mistake is a one-line UsageError, and in a
real kernel it starts a real tuner in the background (the cell returns at once), shows the live view
that fills with trials while the kernel is free, and ``%workbench stop tune`` stops it, leaving no
worker process behind."""

from __future__ import annotations

import psutil
import pytest
from IPython.core.error import UsageError

from workbench.ui.magics import build_parser, tune_settings

from .conftest import process_group, wait_gone


def _tracker(pid: int) -> bool:
    """multiprocessing's resource tracker, which lives as long as the kernel."""
    try:
        return "resource_tracker" in " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def parse(line: str):
    return build_parser().parse_args(line.split())


def test_tune_options_are_the_tune_settings():
    args = parse("tune mlp --p99-ms 20 --rate 300 --budget-s 30 --knobs max_batch_size,replicas --min-accuracy 0.9")
    assert args.name == "mlp"
    assert tune_settings(args) == {"p99_ms": 20.0, "goal": "fixed rate", "rate": 300.0, "budget_s": 30.0,
                                   "knobs": ["max_batch_size", "replicas"], "min_accuracy": 0.9}
    assert tune_settings(parse("tune cnn --p99-ms 5 --max-rate")) == {"p99_ms": 5.0, "goal": "highest rate"}
    assert parse("stop tune").what == "tune" and parse("wait tune").what == "tune"


@pytest.mark.parametrize(("line", "words"), [
    ("tune mlp", "the following arguments are required: --p99-ms"),
    ("tune mlp --p99-ms 20 --rate 100 --max-rate", "not allowed with argument --rate"),
    ("tune mlp --p99-ms fast", "argument --p99-ms: invalid float value: 'fast'"),
])
def test_tune_mistakes_are_one_line_usage_errors(line, words):
    with pytest.raises(UsageError, match=words):
        parse(line)


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.timeout(500)
def test_tune_magic_starts_shows_and_stops_a_tuner(kernel):
    kernel.ok("%load_ext workbench")
    bad = kernel.run("%workbench tune mlp --p99-ms 50 --knobs max_batch_size,bogus")
    assert "UsageError" in (bad.error or "") + bad.stderr and "bogus" in (bad.error or "") + bad.stderr
    started = kernel.ok("%workbench tune mlp --p99-ms 50 --rate 100 --budget-s 120 --knobs max_batch_size\n"
                        "bench = %workbench\n"
                        "view = bench.views[-1]\n"
                        "print('tuning in the background:', bench.session.tuning.running, type(view).__name__)")
    assert "tuning in the background: True TuneView" in started.stdout
    watched = kernel.ok("await bench.until(lambda: len(view.trials) >= 1, timeout_s=240)\n"
                        "first = [t.number for t in bench.session.tuning.tuner.trials][:1]\n"
                        "print('trials drawn:', len(first) == 1 and view.plot.source.data['number'][:1] == first)",
                        timeout_s=260)
    assert "trials drawn: True" in watched.stdout, watched.stdout
    processes = {p for p in kernel.descendants() | process_group(kernel.pid) if p != kernel.pid and not _tracker(p)}
    assert processes  # the tuner's worker and load generator, at least
    stopped = kernel.ok("%workbench stop tune\n%workbench wait tune --timeout 90\n"
                        "print('done:', bench.session.tuning.tuner.done, bench.session.tuning.tuner.stopped)",
                        timeout_s=120)
    assert "done: True True" in stopped.stdout, stopped.stdout
    assert wait_gone(processes) == set()  # the tuner's workers and load generators ended
    refused = kernel.run("%workbench stop tune")
    assert "not running" in (refused.error or "") + refused.stderr
