"""Time a large upload: reading a million-session CSV, then drawing the Data page for it.

Writes a simulated cohort of N sessions as a CSV (the size a hospital export might reach),
times `data.load_dataset` on its bytes (what the uploader hands over), then the Data page's
script run with that data set (AppTest, no browser), and counts what the page sends: chart
rows and table rows. Run from the repository root:
`.venv/bin/python benchmarks/bench_large_upload.py [N ...]` (default 100000 1000000).
Prints figures; it asserts nothing about time (tests/ui/test_data_page.py checks the bounds).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnapp.intake import data  # noqa: E402
from bnapp.intake.simulator import simulate_cohort  # noqa: E402
from tests.apptest import app_at, texts  # noqa: E402
from tests.page_payload import chart_rows, table_rows  # noqa: E402


def bench(n: int) -> None:
    content = simulate_cohort(n, seed=0).to_csv(index=False).encode()
    start = time.perf_counter()
    ds = data.load_dataset(content, f"cohort_{n}.csv")
    read = time.perf_counter() - start
    at = app_at("pages/data.py")
    at.session_state["dataset"] = ds
    start = time.perf_counter()
    at.run()
    drawn = time.perf_counter() - start
    start = time.perf_counter()
    at.run()
    again = time.perf_counter() - start
    assert not at.exception, at.exception
    charts = chart_rows(at)
    assert ds.name in texts(at) or ds.name in str(at.sidebar.text), "the page shows the upload"
    print(f"{n:>9,} sessions ({len(content) / 2**20:.0f} MiB CSV): read {read:.2f} s, "
          f"Data page {drawn:.2f} s, again {again:.2f} s; sent {len(charts)} charts of "
          f"{sum(charts):,} rows in all (at most {max(charts):,}) and {table_rows(at):,} table rows")


if __name__ == "__main__":
    for n in [int(a) for a in sys.argv[1:]] or [100_000, 1_000_000]:
        bench(n)
