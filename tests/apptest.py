"""Driving the dashboard with streamlit's AppTest: one page, a session seeded with small runs."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from streamlit.testing.v1 import AppTest

from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol
from bnapp.intake import data
from bnapp.jobs import cache as result_cache
from bnapp.jobs.cached import cached_train
from bnapp.ui.state import RunEntry, run_label

APP = str(Path(__file__).resolve().parents[1] / "app.py")
SMALL = Protocol(folds=3, epochs=30, seed=0)  # seconds to train, enough for every analysis


@cache
def demo_run(input_mode: str = "raw", protocol: Protocol = SMALL) -> RunEntry:
    """The study's network (raw: input BN; zscore: z-scored inputs) on the demo cohort."""
    spec = ArchSpec.study_e2e() if input_mode == "raw" else ArchSpec.study_zscore()
    ds = data.demo_dataset()
    cols = list(data.STUDY_INPUTS)
    run = cached_train(ds.X(cols), ds.y(), spec, protocol, features=cols,
                       target=data.STUDY_TARGET, data_key=ds.fingerprint(),
                       row_ids=ds.row_numbers, data_name=ds.name)
    key = result_cache.run_key(ds.fingerprint(), spec, protocol, cols, data.STUDY_TARGET)
    return RunEntry(key, run_label(run, ds.name), run, ds.name)


def app_at(page: str | None = None, *, runs: tuple[RunEntry, ...] = (),
           timeout: float = 120) -> AppTest:
    """The app after its first run on `page` (e.g. "pages/sensitivity.py"); the last of
    `runs` is the active one."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    if runs:
        at.session_state["runs"] = {entry.key: entry for entry in runs}
        at.session_state["active_run"] = runs[-1].key
    at.run()
    if page is not None:
        at.switch_page(page).run()
    return at


def texts(at: AppTest) -> str:
    """Every piece of text on the page (markdown, text, captions, alerts), joined."""
    parts = [e.value for kind in ("markdown", "text", "caption", "info", "warning", "error",
                                  "success", "title", "header", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)
