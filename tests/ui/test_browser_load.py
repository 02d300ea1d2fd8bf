"""Issue 7, load: eight browser sessions at once against one server, each with its own file.

All finish; each sees only its own data set and run; two sessions with the same content share
one computation (one job started for their key, counted in the server's log); the server's
memory stays bounded. No timing assertions: benchmarks/bench_ui.py reports the throughput.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from bnapp.intake import data
from bnapp.jobs import cache
from tests.browser import (
    LoadSession,
    RssSampler,
    chromium,
    require_browser,
    run_sessions,
    serve_app,
)

pytestmark = pytest.mark.browser

N_SESSIONS = 8
FOLDS, EPOCHS = 5, 50
RSS_LIMIT = 3 * 1024**3  # bytes: generous; the server alone idles near 0.3 GB
STARTED = re.compile(r"bnapp job started: train ([0-9a-f]{64})")  # bnapp.jobs.scheduler's INFO line


def load_files(seed_csv: Path, out_dir: Path, n: int = N_SESSIONS) -> list[LoadSession]:
    """n files cut from the study's CSV, each a different number of rows, except that the last
    two have the same content under different names (the duplicate request)."""
    header, *rows = seed_csv.read_text().splitlines()
    sessions = []
    for i in range(n):
        keep = len(rows) - 6 * min(i, n - 2)
        path = out_dir / f"cohort-{chr(ord('a') + i)}.csv"
        path.write_text("\n".join([header, *rows[:keep]]) + "\n")
        ds = data.load_dataset(path)
        sessions.append(LoadSession(path, ds.n_usable, ds.n_dropped))
    return sessions


def test_eight_sessions_at_once(urea_csv, tmp_path, monkeypatch):
    require_browser()
    sessions = load_files(urea_csv, tmp_path)
    duplicate = sessions[-2:]
    assert duplicate[0].path.read_bytes() == duplicate[1].path.read_bytes()
    assert len({s.counts for s in sessions}) == N_SESSIONS - 1, "the other files must differ"

    cache_dir = tmp_path / "server-cache"
    with serve_app(cache_dir) as server, chromium() as browser, RssSampler(server) as rss:
        run_sessions(browser, server, sessions, folds=FOLDS, epochs=EPOCHS)
        log = server.log()

    for session in sessions:
        others = [s.name for s in sessions if s is not session]
        for where, text in (("sidebar", session.sidebar), ("Data page", session.data_page)):
            assert session.name in text, f"{session.name}: its {where} lost its own data set"
            leaked = [name for name in others if name in text]
            assert not leaked, f"{session.name}: its {where} shows other sessions' {leaked}"
        assert session.counts in session.sidebar, (session.name, session.sidebar)
        assert f"{FOLDS}-fold CV, {EPOCHS} epochs · {session.name}" in session.sidebar

    started = Counter(STARTED.findall(log))
    assert len(started) == N_SESSIONS - 1 and set(started.values()) == {1}, (
        f"8 sessions, 7 distinct data sets: expected one training started per data set (the "
        f"duplicate request shares one computation), found {dict(started)}")
    monkeypatch.setenv("BNAPP_CACHE_DIR", str(cache_dir))
    runs = cache.entries().query("kind == 'run'")
    assert set(runs["key"]) == set(started), "each computation started is the one cached"
    assert set(runs["data_name"]) & {s.name for s in duplicate}, runs["data_name"].tolist()
    assert 0 < rss.peak < RSS_LIMIT, f"server RSS peaked at {rss.peak / 1e9:.2f} GB"
    assert "Traceback" not in log, log[-3000:]
