"""The dashboard in a real browser: the user's loop, live plots, a live change marked on the time axis."""

from __future__ import annotations

import re
import shutil

import pytest

from ..dashboard_process import running_dashboard
from .conftest import ROOT

NUMBER = re.compile(r"^\d[\d,]*(\.\d+)?$")
SERIES_POINTS = """(n) => {
  const doc = window.Bokeh && Bokeh.documents[0];
  const s = doc && doc.get_model_by_name('live_series');
  return !!s && s.data.p99.filter((v) => Number.isFinite(v)).length >= n;
}"""
MARKER = """(text) => {
  const s = Bokeh.documents[0].get_model_by_name('live_changes');
  return !!s && s.data.text.some((t) => t.includes(text));
}"""


def wait_for_page(page) -> None:
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && "
                           "Bokeh.documents[0].get_model_by_name('live_series') !== null")


def visible(page, css: str):
    """The one visible element of a widget class (the Live tab repeats some Serve and Load knobs)."""
    return page.locator(f"{css} >> visible=true")


def tab(page, name: str) -> None:
    page.locator(".bk-tab", has_text=name).click()


def big_number(page, css: str):
    return page.locator(f"{css} div").last


def test_serve_load_and_tune_live(tmp_path, page, artifacts, zoo_mlp):
    from playwright.sync_api import expect

    with running_dashboard(tmp_path) as dash:
        page.goto(dash.url)
        wait_for_page(page)
        visible(page, ".wb-load-model button").click()
        expect(page.get_by_text("loaded mlp (fp32)")).to_be_visible(timeout=120_000)

        tab(page, "Serve")
        visible(page, ".wb-start-serving button").click()
        expect(visible(page, ".wb-serve-status")).to_contain_text("serving", timeout=120_000)

        tab(page, "Live")
        visible(page, ".wb-start-load button").click()
        page.wait_for_function(SERIES_POINTS, arg=3, timeout=60_000)
        expect(big_number(page, ".wb-p99")).to_have_text(NUMBER)
        dash.note_children()

        batch = visible(page, ".wb-max-batch-size input")
        batch.fill("8")
        batch.press("Enter")
        expect(visible(page, ".wb-pending")).to_contain_text("max_batch_size 32 → 8")
        visible(page, ".wb-apply button").click()
        page.wait_for_function(MARKER, arg="max_batch_size 32 → 8", timeout=30_000)
        expect(page.get_by_text("last change: max_batch_size 32 → 8")).to_be_visible()
        page.wait_for_function(SERIES_POINTS, arg=8, timeout=30_000)  # some load after the change too
        shot = artifacts / "dashboard-under-load.png"
        page.screenshot(path=str(shot))
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "dashboard.png")
        assert page.offsite_requests == []  # type: ignore[attr-defined]
        assert dash.seen_children, "serving and load should have started processes"
        page.close()  # the tab goes away: its session closes, and with it the server, the load and threads
        _assert_gone(dash.seen_children)
        assert dash.proc.poll() is None  # the dashboard itself serves on
    assert dash.proc.returncode == 0, dash.output()


def test_demo_behind_a_token_is_alive_on_first_screen(tmp_path, page, artifacts, zoo_mlp):
    from playwright.sync_api import expect

    token = "browser-test-token"
    with running_dashboard(tmp_path, "--demo", "--token", token) as dash:
        page.goto(dash.url)
        expect(page.get_by_text("needs its access token")).to_be_visible()
        page.goto(f"{dash.url}?token={token}")
        wait_for_page(page)
        expect(page.locator(".bk-tab.bk-active")).to_have_text("Live")
        page.wait_for_function(SERIES_POINTS, arg=2, timeout=120_000)  # no clicks: the demo serves and loads
        expect(big_number(page, ".wb-p99")).to_have_text(NUMBER)
        expect(big_number(page, ".wb-rps")).to_have_text(NUMBER)
        dash.note_children()
        page.screenshot(path=str(artifacts / "dashboard-demo.png"))
        assert page.offsite_requests == []  # type: ignore[attr-defined]
    assert dash.proc.returncode == 0, dash.output()
    _assert_gone(dash.seen_children)


def _assert_gone(pids: set[int]) -> None:
    import psutil

    from workbench.testing import wait_for

    def gone() -> bool:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        return not alive

    wait_for(gone, 30, message="no process of the dashboard left behind")


pytestmark = pytest.mark.browser
