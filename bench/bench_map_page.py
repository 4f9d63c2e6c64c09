"""Benchmark the incidents map pages with 1,000 and with 1,000,000 incidents.

What it does, in a scratch database with the demo county's places (its incidents replaced by
1,000 generated ones, then 999,000 more added by COPY), the app under gunicorn (2 workers):

* page size: the HTML document of each map page (target <= 500 KB at both sizes), and the bytes
  transferred for it with a warm cache (the document, tiles and data; scripts come from cache);
* render time in headless Chromium (Debian's, via Playwright; warm HTTP cache, medians of
  ``--repeat`` loads): from navigation start until the incidents layer has drawn its tiles
  (``gmLoadedAt`` of the vector-tile layer) or, for a page without one, until the last
  response arrived (network idle). Target: at 1M <= 1.2 x at 1k.

Page: ``/incidents/map`` (incidents from vector tiles; ``--page`` for another, e.g. with filters
in its query string). At 1M it also checks in the browser that the map shows counts per cell at
county zoom and single incidents at zoom 17.

Run:  .venv/bin/python bench/bench_map_page.py [--repeat 5] [--incidents 1000000]
"""
from __future__ import annotations

import argparse
import sys

from sqlalchemy import create_engine, text

import scale
from scale import log, median

from tests.conftest import CHROMIUM_ARGS  # noqa: E402

PAGES = ("/incidents/map",)
LAYER = "Object.values(window).find(v => v && v.gmStats && v.gmQuery)"
MAP = "Object.values(window).find(v => v instanceof L.Map)"


def measure(browser, base: str, path: str, repeat: int) -> dict | None:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", "county")
    page.fill("input[name=password]", scale.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    html_sizes, fetched, times, errors = [], [], [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    for attempt in range(repeat + 1):            # the first load only warms the HTTP cache
        response = page.goto(f"{base}{path}")
        if response is None or response.status != 200:
            context.close()
            return None
        html = len(response.body())
        tiles = page.evaluate(f"() => !!({LAYER})")
        if tiles:
            page.wait_for_function(f"() => {LAYER}.gmLoadedAt !== null", timeout=60000)
            elapsed = page.evaluate(f"() => {LAYER}.gmLoadedAt")
            page.wait_for_load_state("networkidle")
        else:
            page.wait_for_load_state("networkidle")
            elapsed = page.evaluate("() => Math.max(...performance.getEntriesByType('resource').map(e => e.responseEnd),"
                                    " performance.getEntriesByType('navigation')[0].loadEventEnd)")
        transferred = page.evaluate("() => performance.getEntriesByType('navigation')[0].transferSize + "
                                    "performance.getEntriesByType('resource').reduce((s, e) => s + e.transferSize, 0)")
        if attempt:
            html_sizes.append(html)
            fetched.append(transferred)
            times.append(elapsed)
    result = {"html": median(html_sizes), "fetched": median(fetched), "ms": median(times), "tiles": tiles,
              "errors": errors, "page": page, "context": context}
    return result


def check_zooms(result) -> str:
    page = result["page"]
    page.reload()
    page.wait_for_function(f"() => {LAYER}.gmLoadedAt !== null", timeout=60000)
    zoom = page.evaluate(f"() => {MAP}.getZoom()")
    low = page.evaluate(f"() => Object.assign({{}}, {LAYER}.gmStats)")
    page.evaluate(f"""() => {{ const l = {LAYER}; Object.keys(l.gmStats).forEach(k => delete l.gmStats[k]);
                              l.gmLoadedAt = null; {MAP}.setView([33.8750, 113.0500], 17, {{animate: false}}); }}""")
    page.wait_for_function(f"() => {LAYER}.gmLoadedAt !== null", timeout=60000)
    high = page.evaluate(f"() => Object.assign({{}}, {LAYER}.gmStats)")
    return (f"z{zoom}: {low.get(f'{zoom}:incident_cells', 0)} cells drawn, {low.get(f'{zoom}:incidents', 0)} points; "
            f"z17: {high.get('17:incident_cells', 0)} cells, {high.get('17:incidents', 0)} points")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--page", action="append", help="page to measure (repeatable); default /incidents/map")
    args = parser.parse_args()
    pages = tuple(args.page or PAGES)
    failures = []
    from playwright.sync_api import sync_playwright

    url = scale.new_database("gm_bench_page")
    log(f"database: {url}")
    results: dict[int, dict] = {}
    try:
        scale.load_demo_county(url)
        scale.delete_incidents(url)
        scale.generate_incidents(url, args.small, seed=args.seed)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
            for size in (args.small, args.incidents):
                if size != args.small:
                    log(f"adding {size - args.small:,} incidents by COPY")
                    scale.generate_incidents(url, size - args.small, seed=args.seed + 1)
                engine = create_engine(url)
                with engine.connect() as conn:
                    count = conn.execute(text("SELECT count(*) FROM incidents")).scalar_one()
                engine.dispose()
                with scale.gunicorn(url) as base:
                    for path in pages:
                        result = measure(browser, base, path, args.repeat)
                        if result is None:
                            log(f"{path}: not available")
                            continue
                        results.setdefault(path, {})[count] = result
                        log(f"{count:,} incidents {path}: HTML {result['html'] / 1024:.1f} KB, transferred "
                            f"{result['fetched'] / 1024:.0f} KB, render {result['ms']:.0f} ms"
                            + (f", page errors {result['errors']}" if result["errors"] else ""))
                        if result["tiles"] and size == args.incidents:
                            log("  " + check_zooms(result))
                        result["context"].close()
            browser.close()
        log("\n| page | HTML KB 1k | HTML KB 1M | transferred KB 1k | transferred KB 1M | render ms 1k | render ms 1M | 1M/1k |")
        log("|---|---|---|---|---|---|---|---|")
        for path, by_count in results.items():
            if len(by_count) != 2:
                continue
            small, large = (by_count[k] for k in sorted(by_count))
            ratio = large["ms"] / small["ms"]
            log(f"| {path} | {small['html'] / 1024:.1f} | {large['html'] / 1024:.1f} | {small['fetched'] / 1024:.0f} | "
                f"{large['fetched'] / 1024:.0f} | {small['ms']:.0f} | {large['ms']:.0f} | {ratio:.2f} |")
            for r in (small, large):
                if r["html"] > 500 * 1024:
                    failures.append(f"{path}: HTML {r['html'] / 1024:.0f} KB > 500 KB")
            if ratio > 1.2:
                failures.append(f"{path}: render at 1M / 1k = {ratio:.2f} > 1.2")
    finally:
        if not args.keep:
            scale.drop(url)
    log("\n" + ("all targets met" if not failures else "targets missed:\n  " + "\n  ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
