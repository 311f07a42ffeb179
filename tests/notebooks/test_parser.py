"""The ``%workbench`` command line: every command parses into the settings the kernel workbench takes, and
a mistake is an IPython UsageError naming the command (one line, no traceback)."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from workbench.ui.kernel import LOAD_SETTINGS, SERVE_SETTINGS
from workbench.ui.magics import _given, build_parser


def parse(line: str):
    return build_parser().parse_args(line.split())


def test_serve_and_apply_options_are_the_serve_settings():
    args = parse("serve cnn --replicas 2 --stages 2 --threads 1 --max-batch-size 8 --max-delay-ms 2.5 "
                 "--routing round_robin --max-queue 64 --backend ray --port 8001")
    assert args.name == "cnn" and args.backend == "ray" and args.port == 8001 and not args.no_http
    assert _given(args, SERVE_SETTINGS) == {"replicas": 2, "stages": 2, "threads_per_worker": 1, "max_batch_size": 8,
                                            "max_delay_ms": 2.5, "routing": "round_robin", "max_queue": 64}
    assert _given(parse("apply --max-delay-ms 10"), SERVE_SETTINGS) == {"max_delay_ms": 10.0}


def test_load_options_are_the_load_settings():
    given = _given(parse("load --rate 200 --duration 30 --schedule constant"), LOAD_SETTINGS)
    assert given == {"rate": 200.0, "duration_s": 30.0, "schedule": "constant"}
    given = _given(parse("load --schedule step --rates 100,200 --step-s 5 --until-stopped"), LOAD_SETTINGS)
    assert given == {"schedule": "step", "step_rates": "100,200", "step_s": 5.0, "until_stopped": True}
    assert _given(parse("load --concurrency 4"), LOAD_SETTINGS) == {"concurrency": 4}


@pytest.mark.parametrize(("line", "words"), [
    ("frobnicate", "%workbench: argument COMMAND: invalid choice: 'frobnicate'"),
    ("serve", "%workbench serve: the following arguments are required: name"),
    ("serve mlp --replicas two", "%workbench serve: argument --replicas: invalid int value: 'two'"),
    ("load --duration 5 --until-stopped", "not allowed with argument --duration"),
    ("stop now", "%workbench stop: argument what: invalid choice: 'now'"),
])
def test_mistakes_are_usage_errors_naming_the_command(line, words):
    with pytest.raises(UsageError, match="see %workbench") as caught:
        parse(line)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_help_lists_every_command(capsys):
    build_parser().print_help()
    text = capsys.readouterr().out
    for command in ("serve", "load", "apply", "stop", "wait", "status", "plot", "knobs", "compression", "dashboard"):
        assert command in text
