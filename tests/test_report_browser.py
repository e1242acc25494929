"""The HTML report in a real browser: headless Chromium driven by Playwright.

Needs Debian's Chromium at /usr/bin/chromium (``scripts/install_chromium.sh``).  Locally the
test is skipped without it; when the ``CI`` environment variable is set it fails instead, so
CI cannot pass without running it.  Set ``ROBUSTLENS_SCREENSHOT=path.png`` to keep a
full-page screenshot (one is always written to the test's tmp_path).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import copy_study

from robustlens.report import build_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--disable-quic"]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _unavailable("install Chromium: apt-get install -y chromium "
                     "(or scripts/install_chromium.sh)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("install Playwright's Python package: pip install playwright")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _column(page, table: str, col: int) -> list[str]:
    return page.eval_on_selector_all(
        f"{table} tbody tr",
        f"rows => rows.map(r => r.cells[{col}].getAttribute('data-sort') ?? "
        f"r.cells[{col}].textContent.trim())")


def _text_column(page, table: str, col: int) -> list[str]:
    return page.eval_on_selector_all(
        f"{table} tbody tr", f"rows => rows.map(r => r.cells[{col}].textContent.trim())")


def test_report_in_chromium(browser, tmp_path, real_study):
    import pandas as pd

    out = copy_study(real_study, tmp_path / "study")
    report = build_report(out)
    srvr = pd.read_csv(out / "srvr" / "srvr.csv")
    url = report.resolve().as_uri()

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console_errors: list[str] = []
    failed: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: failed.append(f"{r.url[:120]}: {r.failure}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url, wait_until="load")

    # every picture is embedded and decoded
    # (the pose render of a map stays empty, and hidden, until a click)
    imgs = page.eval_on_selector_all(
        "img", "els => els.filter(i => !i.closest('[data-robustlens=\"pose-render\"]'))"
               ".map(i => ({src: i.src.slice(0, 30), ok: i.complete, "
               "w: i.naturalWidth, h: i.naturalHeight}))")
    assert len(imgs) >= 8
    bad = [i for i in imgs if not (i["ok"] and i["w"] > 0 and i["h"] > 0)]
    assert not bad, f"images that did not load: {bad}"

    # no horizontal scroll at 1280 px: nothing is wider than the window
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"page is {widths[0]} px wide at {widths[1]} px"

    # an interactive map: hover says pose, score and prediction; a click shows the render
    # at that pose and the top classes
    maps = page.locator('[data-robustlens="map"]')
    assert maps.count() >= 2
    first_map = maps.nth(0)
    first_map.scroll_into_view_if_needed()
    page.wait_for_function("document.querySelector('[data-robustlens=\"map\"] .nsewdrag')")
    drag = first_map.locator(".nsewdrag").first
    box = drag.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    page.wait_for_selector('[data-robustlens="map"] .hoverlayer .hovertext', timeout=5000)
    hover = first_map.locator(".hoverlayer .hovertext").first.text_content()
    assert "azimuth" in hover and "elevation" in hover and "predicts" in hover
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    panel = page.locator(".pose-panel").nth(0)
    render = panel.locator('[data-robustlens="pose-render"] img')
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0 && img.src.endsWith('.jpg')",
        arg=render.element_handle(), timeout=5000)
    assert panel.locator('[data-robustlens="pose-render"]').is_visible()
    assert "azimuth" in panel.locator(".pose-caption").text_content()
    top = panel.locator('[data-robustlens="top5"] li')
    assert top.count() >= 3 and "%" in top.nth(0).text_content()
    # the regions toggle: a legend click hides that method's boxes (and starts)
    legend = first_map.locator(".legend .traces").first
    name = legend.text_content().strip()
    legend.locator(".legendtoggle").click()
    # plotly waits for a possible double click before it toggles
    page.wait_for_function(
        "([id, n]) => document.getElementById(id).data.filter(t => t.name === n)"
        ".every(t => t.visible === 'legendonly')", arg=[first_map.get_attribute("id"), name],
        timeout=5000)
    n_hidden = page.evaluate(
        "([id, n]) => document.getElementById(id).data.filter(t => t.name === n).length",
        [first_map.get_attribute("id"), name])
    assert n_hidden == 1  # one trace: that method's boxes and its start points

    # the summary names the most robust model (of the first method)
    first = srvr[srvr["method"] == srvr["method"].iloc[0]]
    assert page.inner_text("#summary .best-model").strip() == \
        first.loc[first["srvr"].idxmax(), "model"]

    # numeric-aware sorting of the step timings, both ways, rows moving with their keys
    t = "#prov-timings"
    header = page.locator(f"{t} thead th", has_text="seconds")
    before = dict(zip(_text_column(page, t, 0), _column(page, t, 1), strict=True))
    assert len(before) > 3
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    asc = [float(v) for v in _column(page, t, 1)]
    assert asc == sorted(float(v) for v in before.values())
    assert [float(before[k]) for k in _text_column(page, t, 0)] == asc
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    assert [float(v) for v in _column(page, t, 1)] == asc[::-1]

    # the SRVR table (most robust first) re-sorts both ways on its CI column, and by name
    s = "#srvr-table"
    initial = [float(v) for v in _column(page, s, 3)]
    assert initial == sorted(initial, reverse=True)
    ci = page.locator(f"{s} thead th", has_text="SRVR")
    ci.click()
    asc = [float(v) for v in _column(page, s, 3)]
    assert asc == sorted(initial) and asc != initial
    ci.click()
    assert [float(v) for v in _column(page, s, 3)] == initial
    page.locator(f"{s} thead th", has_text="model").click()
    models = _text_column(page, s, 0)
    assert models == sorted(models) and models[0] == min(srvr["model"])
    assert ci.get_attribute("aria-sort") is None  # only the active column is marked

    # keyboard: Enter on a focused header sorts too
    page.locator(f"{s} thead th", has_text="model").press("Enter")
    assert _text_column(page, s, 0)[0] == max(srvr["model"])

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("ROBUSTLENS_SCREENSHOT"):
        dest = Path(os.environ["ROBUSTLENS_SCREENSHOT"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, dest)
    page.close()

    assert not console_errors, console_errors
    assert not failed, failed
    folder = out.resolve().as_uri() + "/"
    assert all(u == url or u.startswith(("data:", folder)) for u in requests), \
        f"requests outside the report folder: {[u for u in requests if u != url][:5]}"
