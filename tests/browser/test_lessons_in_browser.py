"""Every lesson as a learner sees it: opened in JupyterLab in headless Chromium, all cells run, then
checked for what a person would notice: a cell that raised, a widget shown as "Error displaying widget"
or as text instead of a widget, a plotly figure that did not draw (no SVG), and the knowledge check's
button not answering. A screenshot and the timings of each lesson go to tests/artifacts/browser/.

Timings are recorded, never asserted (they depend on the machine): seconds from opening the page to an
idle kernel, from Run All to the first widget on screen, to the last cell done, and from clicking the
quiz's "Check my answers" to its score appearing (a round trip through the kernel); for the first lesson,
from choosing another source in its first widget to the new answer on screen (the cold start)."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"

PANEL = "window.jupyterapp && window.jupyterapp.shell.currentWidget"
KERNEL_IDLE = (f"{PANEL} && window.jupyterapp.shell.currentWidget.sessionContext?.session?.kernel?.status === 'idle'"
               " && !window.jupyterapp.shell.currentWidget.sessionContext.isRestarting")
ALL_RUN = """(() => {
  const panel = window.jupyterapp.shell.currentWidget, cells = panel.content.model.cells;
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type === 'code' && c.sharedModel.getSource().trim() && c.executionCount === null) return false;
  }
  return panel.sessionContext.session.kernel.status === 'idle';
})()"""
# what the notebook model holds (errors, widget and plotly outputs) and what the page shows
STATE = """(() => {
  const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
  const s = {errors: [], widgets: 0, figures: 0, executed: 0, code: 0};
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    s.code++; if (c.executionCount !== null) s.executed++;
    for (const o of c.outputs.toJSON()) {
      if (o.output_type === 'error') s.errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
      const d = o.data || {};
      if (d['application/vnd.jupyter.widget-view+json']) s.widgets++;
      if (d['application/vnd.plotly.v1+json']) s.figures++;
    }
  }
  const outs = Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell-outputArea > .jp-OutputArea-child .jp-OutputArea-output'));
  s.widgets_shown = outs.filter(e => e.querySelector('.jupyter-widgets')).length;
  s.figures_drawn = outs.filter(e => e.querySelector('svg.main-svg')).length;
  s.widget_reprs = outs.filter(e => /^(VBox|HBox|Dropdown|IntSlider|Output|Button|Text)\\(/.test(e.innerText.trim())).length;
  s.widget_errors = document.body.innerText.split('Error displaying widget').length - 1;
  return s;
})()"""
FIRST_WIDGET = "document.querySelector('.jp-Notebook .jp-OutputArea-output .jupyter-widgets') !== null"


def test_every_lesson_is_collected():
    assert LESSONS, "no lessons found"


@pytest.mark.parametrize("notebook", LESSONS, ids=lambda p: p.stem)
def test_lesson_in_the_browser(lab, browser, notebook):
    url, token = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    timings = {}
    try:
        t0 = time.monotonic()
        # a workspace of its own, reset: nothing from another lesson's page is restored into this one
        page.goto(f"{url}/lab/workspaces/{notebook.stem}/tree/{notebook.name}?reset&token={token}")
        page.wait_for_function(f"{PANEL} && window.jupyterapp.shell.currentWidget.context?.path === '{notebook.name}'",
                               timeout=120_000)
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)
        t1 = time.monotonic()
        timings["page_to_idle_kernel_s"] = round(t1 - t0, 2)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        first_widget = None
        deadline = t1 + 300
        while not page.evaluate(ALL_RUN):
            if first_widget is None and page.evaluate(FIRST_WIDGET):
                first_widget = time.monotonic()
            assert time.monotonic() < deadline, f"{notebook.name}: cells still running after 300 s"
            page.wait_for_timeout(200)
        t2 = time.monotonic()
        timings["run_all_s"] = round(t2 - t1, 2)
        if first_widget is None and page.evaluate(FIRST_WIDGET):
            first_widget = t2
        timings["kernel_idle_to_first_widget_s"] = None if first_widget is None else round(first_widget - t1, 2)
        page.wait_for_timeout(500)                  # let the last outputs draw
        state = page.evaluate(STATE)

        assert state["executed"] == state["code"], f"{state['code'] - state['executed']} code cells did not run"
        assert not state["errors"], f"cells raised: {state['errors']}"
        assert state["widget_errors"] == 0, "a widget shows 'Error displaying widget'"
        assert state["widget_reprs"] == 0, "a widget is shown as its text repr, not as a widget"
        assert state["widgets_shown"] >= state["widgets"], \
            f"{state['widgets']} widget outputs, {state['widgets_shown']} drawn as widgets"
        assert state["figures_drawn"] >= state["figures"], \
            f"{state['figures']} plotly figures, {state['figures_drawn']} drawn as SVG"

        check = page.locator("button", has_text="Check my answers")
        if check.count():                           # the knowledge check answers through the kernel
            feedback = page.get_by_text("not answered")
            assert feedback.count() == 0, "quiz feedback before any click"
            t3 = time.monotonic()
            check.last.scroll_into_view_if_needed()
            check.last.click()
            feedback.first.wait_for(timeout=60_000)
            page.get_by_text(re.compile(r"^\s*0 of \d+\s*$")).last.wait_for(timeout=60_000)
            timings["quiz_click_to_score_s"] = round(time.monotonic() - t3, 2)
        elif notebook.stem != "00_welcome":
            pytest.fail("no knowledge check on screen")
        if notebook.stem == "00_welcome":          # cold start: the first lesson's first widget answers
            shown = page.locator(".jp-Notebook .jupyter-widgets pre").first
            before = shown.inner_text()
            t4 = time.monotonic()
            page.locator(".jp-Notebook .jupyter-widgets select").first.select_option("node-2")
            page.wait_for_function("(b) => document.querySelector('.jp-Notebook .jupyter-widgets pre').innerText !== b",
                                   arg=before, timeout=60_000)
            timings["first_widget_response_s"] = round(time.monotonic() - t4, 2)
            assert "node-2" in shown.inner_text()
        timings.update({k: state[k] for k in ("code", "widgets", "figures")})
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{notebook.stem}.png"))
        (ARTIFACTS / f"{notebook.stem}.json").write_text(json.dumps(timings, indent=1))
        page.close()
