"""Background work: state updates reach the UI thread only through the queue, progress and errors show."""

from __future__ import annotations

import threading

import pytest

from workbench.errors import ConfigError, ModelLoadError
from workbench.testing import wait_for
from workbench.ui.state import LiveState, TaskState, set_outputs
from workbench.ui.tasks import TaskRunner, Updates, error_text


def test_updates_run_at_once_without_a_ui_and_wait_for_drain_with_one():
    updates, seen = Updates(), []
    updates.post(lambda: seen.append(1))
    assert seen == [1]
    updates.attach()
    updates.post(lambda: seen.append(2))
    updates.post(lambda: 1 / 0)  # a broken update is logged, the others still run
    updates.post(lambda: seen.append(3))
    assert seen == [1]
    assert updates.drain() == 3
    assert seen == [1, 2, 3]


def test_updates_posted_from_threads_are_applied_on_the_draining_thread():
    updates, live = Updates(), LiveState()
    updates.attach()
    applied_on = []

    def post() -> None:
        updates.post(lambda: (set_outputs(live, rps=5.0), applied_on.append(threading.get_ident())))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert live.rps == 0.0
    updates.drain()
    assert live.rps == 5.0 and set(applied_on) == {threading.get_ident()}


@pytest.fixture
def runner():
    updates = Updates()
    updates.attach()
    r = TaskRunner(updates, max_workers=2)
    try:
        yield r
    finally:
        r.close(timeout_s=10)


def test_a_task_reports_progress_then_its_result(runner):
    task, go, results = TaskState(), threading.Event(), []

    def work(progress):
        progress(0.25, "a quarter")
        assert go.wait(10)
        return 42

    future = runner.submit(task, "counting", work, on_done=results.append)
    wait_for(lambda: runner.updates.drain() or task.progress == 25, 10, message="progress posted")
    assert task.busy and task.task == "counting" and task.message == "a quarter"
    with pytest.raises(ConfigError, match="still running"):
        runner.submit(task, "again", lambda progress: None)
    go.set()
    assert future.result(10) == 42
    runner.updates.drain()
    assert not task.busy and task.progress == 100 and task.error == "" and results == [42]


def test_a_failing_task_shows_why(runner):
    task = TaskState()

    def work(progress):
        raise ModelLoadError("model file 'x.pt2' does not exist")

    future = runner.submit(task, "loading x.pt2", work)
    with pytest.raises(ModelLoadError):
        future.result(10)
    runner.updates.drain()
    assert not task.busy and task.error == "model file 'x.pt2' does not exist"
    assert task.message == "loading x.pt2 failed"
    # the next task starts clean
    runner.submit(task, "ok", lambda progress: None).result(10)
    runner.updates.drain()
    assert task.error == "" and not task.busy


def test_error_text_keeps_user_errors_plain_and_names_bugs():
    assert error_text(ConfigError("max_batch_size must be >= 1, got 0")) == "max_batch_size must be >= 1, got 0"
    assert error_text(KeyError("x")) == "KeyError: 'x'"


def test_a_closed_runner_refuses_work():
    r = TaskRunner(Updates())
    r.close(timeout_s=5)
    with pytest.raises(ConfigError, match="closed"):
        r.submit(TaskState(), "late", lambda progress: None)
