"""Time the dashboard in real headless Chromium: cold start, page switches, and eight sessions.

Run from the repository root: `.venv/bin/python benchmarks/bench_ui.py [--sessions N]
[--repeat N] [--parts cold,pages,load]`.
Needs Debian's chromium and playwright (`make test` installs both). Each part gets a fresh
server on a free 127.0.0.1 port with an empty cache directory; cold start and page switches
are repeated on --repeat fresh servers (default 3) and reported as medians. Prints figures;
asserts nothing about time (tests/ui/test_browser*.py check the behaviour).

1. Cold start: from `streamlit run` to the Data page rendered on the demo cohort (the
   browser already open; until the server's "script finished" message), and the first
   script run of a new browser session on a warm server.
2. Page switches: train the study's network (10 folds x 200 epochs) on the demo cohort (timed
   from the click to the end of the script run that draws its results, to the browser showing
   them: its loss and γ charts drawn, timed by the browser's own clock from the click's
   pointerdown, as the websocket's messages reach this process late when the browser is busy;
   and to the sidebar's update), then visit every page twice; the first visit reads the
   analyses the training worker prepared (or computes what is not ready yet), the second is
   served from Streamlit's memory. A switch is timed from the click in the sidebar to the
   server's "script finished" message on the page's websocket.
3. Load: N sessions at once, each uploading its own file and training 5 folds x 50 epochs
   (the load test's protocol); time per phase, runs per second, and the server's peak memory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.browser import (  # noqa: E402
    DEFAULT_PAGE,
    PAGES,
    RssSampler,
    chromium,
    finish_time,
    go_to,
    last_event,
    new_session,
    open_app,
    run_sessions,
    runs_finished,
    serve_app,
    wait_for_sidebar,
    wait_rerun,
)
from tests.ui.test_browser_load import load_files  # noqa: E402

SEED_CSV = Path(__file__).resolve().parents[2] / "shared" / "seed" / "Urea.csv"


def cold_start(tmp: Path) -> dict[str, float]:
    """Seconds from `streamlit run` to a healthy server and to the Data page rendered (the
    server's "script finished" message), and for a new session on the running server. The
    browser is open before the server starts, as a user's would be."""
    with chromium() as browser:
        context = new_session(browser)
        start = time.monotonic()
        with serve_app(tmp / "cold-cache") as server:
            healthy = time.monotonic() - start
            page = context.new_page()
            open_app(page, server)
            first = last_event(page) - start
            again = new_session(browser).new_page()
            t = time.monotonic()
            open_app(again, server)
            warm = last_event(again) - t
    return {"healthy": healthy, "first": first, "warm": warm}


# In the page: the times (performance.now(), ms) of the next pointerdown and of the moment the
# main area first holds `charts` drawn Vega charts (a canvas or an SVG of marks each).
WATCH_CHARTS = """charts => {
  const main = document.querySelector('[data-testid="stMain"]');
  window.__bnapp = {};
  document.addEventListener('pointerdown', () => { window.__bnapp.click ??= performance.now(); },
                            true);
  new MutationObserver((_, observer) => {
    if (main.querySelectorAll('.vega-embed canvas, .vega-embed svg.marks').length >= charts) {
      window.__bnapp.drawn = performance.now();
      observer.disconnect();
    }
  }).observe(main, {childList: true, subtree: true});
}"""


def page_switches(tmp: Path) -> dict:
    """Seconds from the Train click to the end of its script run, to the run's curves drawn in
    the browser and to the end of the sidebar's update, and each page's first and second
    visit after it."""
    with serve_app(tmp / "pages-cache") as server, chromium() as browser:
        page = new_session(browser).new_page()
        open_app(page, server)
        go_to(page, "train")  # opens on the study's network and protocol (10 x 200)
        page.evaluate(WATCH_CHARTS, 3)  # the architecture, then the run's loss and γ curves
        before = runs_finished(page)
        t = time.monotonic()
        page.locator(".st-key-train button").first.click()
        page.wait_for_function("() => window.__bnapp.drawn !== undefined", timeout=300_000)
        shown = page.evaluate("() => (window.__bnapp.drawn - window.__bnapp.click) / 1000")
        wait_rerun(page, before, 300)
        wait_for_sidebar(page, "10-fold CV, 200 epochs", 300, "training on the demo cohort")
        drawn = finish_time(page, before) - t  # the click's own script run drew the results
        train = last_event(page) - t
        visits = {name: [] for name in PAGES}
        for _ in range(2):
            for name in [*PAGES[1:], DEFAULT_PAGE]:  # start from Train, end on Data
                t = time.monotonic()
                go_to(page, name, 300)  # also waits out a quiet spell: not counted
                visits[name].append(last_event(page) - t)
    return {"drawn": drawn, "shown": shown, "train": train, "visits": visits}


def _median(values: list[float]) -> str:
    """The median, with the single values when there are several."""
    shown = f"{statistics.median(values):.2f} s"
    return shown if len(values) == 1 else f"{shown} ({', '.join(f'{v:.2f}' for v in values)})"


def report_cold(runs: list[dict[str, float]]) -> None:
    print(f"cold start, median of {len(runs)}: server healthy {_median([r['healthy'] for r in runs])}, "
          f"Data page rendered {_median([r['first'] for r in runs])} after `streamlit run`; "
          f"a new session on the running server {_median([r['warm'] for r in runs])}")


def report_pages(runs: list[dict]) -> None:
    print(f"train the study's network on the demo cohort (10 x 200), median of {len(runs)}, "
          f"from the click: its script run finished {_median([r['drawn'] for r in runs])} (as "
          f"page visits are timed), loss and γ curves on screen "
          f"{_median([r['shown'] for r in runs])} (the browser's clock), sidebar updated "
          f"{_median([r['train'] for r in runs])} (the last script run)")
    print(f"{'page':<12} {'first visit':>12} {'again':>8}  (medians)")
    for name in PAGES:
        first, again = ([r["visits"][name][i] for r in runs] for i in (0, 1))
        print(f"{name:<12} {statistics.median(first):>10.2f} s {statistics.median(again):>6.2f} s")
    cached = [statistics.median(r["visits"][name][1] for name in PAGES) for r in runs]
    print(f"median page switch with results cached: {statistics.median(cached):.2f} s")


def load(tmp: Path, n: int) -> None:
    sessions = load_files(SEED_CSV, tmp, n)
    with serve_app(tmp / "load-cache") as server, chromium() as browser, RssSampler(server) as rss:
        idle = server.rss_bytes()
        phases = run_sessions(browser, server, sessions, folds=5, epochs=50)
    runs = len({s.path.read_bytes() for s in sessions})
    print(f"{n} sessions at once ({runs} distinct files, 5 folds x 50 epochs each): "
          + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    print(f"throughput: {n / phases['total']:.2f} sessions/s from first page to trained run, "
          f"{n / phases['train']:.2f} runs/s in the training phase")
    print(f"server memory (with worker processes): {idle / 2**20:.0f} MiB idle, "
          f"peak {rss.peak / 2**20:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3,
                        help="fresh servers per part for cold start and page switches (medians)")
    parser.add_argument("--parts", default="cold,pages,load",
                        help="comma-separated subset of cold, pages, load")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, part, report in (("cold", cold_start, report_cold),
                                   ("pages", page_switches, report_pages)):
            if name in parts:
                runs = []
                for i in range(args.repeat):
                    (tmp / f"{name}-{i}").mkdir()
                    runs.append(part(tmp / f"{name}-{i}"))
                report(runs)
        if "load" in parts:
            load(tmp, args.sessions)


if __name__ == "__main__":
    main()
