"""Headless Chromium over the demo county: the risk map draws, the measure switch changes the legend,
the heatmap's month slider moves, and the report page shows its map and tables."""
from tests.conftest import login

# The demo incidents run from November 2025 to October 2026.
PERIOD = "from=2026-01-01&to=2026-11-01"


def legend_title(page) -> str:
    return page.inner_text("#gm-risk-legend .gm-legend-title")


def test_risk_map_draws_and_the_measure_switch_changes_the_legend(live_server, page):
    login(page, live_server, "county")
    page.goto(f"{live_server}/risk?{PERIOD}")
    page.wait_for_function("() => Object.values(window).some(v => v && v.gmLoaded > 0 && v.gmSetMeasure)",
                           timeout=20000)
    assert page.locator("path.leaflet-interactive").count() > 500
    assert legend_title(page) == "风险等级（评分）"
    assert "第 5 级" in page.inner_text("#gm-risk-legend")

    page.check("#gm-risk-measures input[value=per_1000]")
    page.wait_for_function("() => document.querySelector('#gm-risk-legend .gm-legend-title').dataset.measure"
                           " === 'per_1000'")
    assert legend_title(page) == "每千人事件数"
    page.check("#gm-risk-measures input[value=gi_bin]")
    page.wait_for_function("() => document.querySelector('#gm-risk-legend .gm-legend-title').dataset.measure"
                           " === 'gi_bin'")
    legend = page.inner_text("#gm-risk-legend")
    assert legend_title(page) == "热点分析 Gi*" and "热点（99%置信）" in legend and "冷点（90%置信）" in legend
    fills = page.evaluate("""() => new Set(Array.from(document.querySelectorAll('path.leaflet-interactive'))
                                   .map(p => p.getAttribute('fill'))).size""")
    assert fills >= 2  # not-significant grey plus at least one hot or cold colour

    page.locator("path.leaflet-interactive").nth(300).hover(force=True)
    page.wait_for_selector(".gm-risk-tip", timeout=5000)
    tip = page.inner_text(".gm-risk-tip")
    assert "网格" in tip and "风险评分" in tip and "较上期" in tip
    assert page.gm_console_errors == []


def test_heatmap_month_slider_moves(live_server, page):
    login(page, live_server, "leader")
    page.goto(f"{live_server}/risk/heat?{PERIOD}")
    page.wait_for_selector("#gm-heat-slider:not([disabled])", timeout=20000)
    assert page.locator("canvas.leaflet-heatmap-layer").count() == 1
    label = page.inner_text("#gm-heat-month")
    assert label.startswith("2026-10") and "起" in label
    page.focus("#gm-heat-slider")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => document.querySelector('#gm-heat-month').textContent.startsWith('2026-08')")
    month = page.evaluate("() => Object.values(window).find(v => v && v.gmMonth !== undefined && v.setLatLngs).gmMonth")
    assert month == "2026-08"
    assert page.input_value("#gm-heat-slider") == "7"
    assert page.gm_console_errors == []


def test_report_page_shows_the_county_numbers(live_server, page):
    login(page, live_server, "county")
    page.goto(f"{live_server}/report?{PERIOD}")
    page.wait_for_selector(".leaflet-container")
    assert page.locator("#gm-compliance tr.gm-total").inner_text().startswith("全县")
    assert page.locator("#gm-resolution tbody tr").count() >= 2
    assert page.locator("path.leaflet-interactive").count() > 300
    assert page.get_attribute("#gm-report-xlsx", "href").startswith("/report/export.xlsx?")
    assert page.gm_console_errors == []
