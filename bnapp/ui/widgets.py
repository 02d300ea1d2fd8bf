"""Streamlit pieces every page uses: figures and tables with downloads, the sidebar, guards.

User text (file names, column names, cell values) is only ever drawn through st.text,
st.dataframe, Altair or `escape_md`, never as raw Markdown or HTML.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import altair as alt
import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from bnapp.engine.model import ArchSpec
from bnapp.engine.results import Layer, network_layers
from bnapp.intake import units
from bnapp.jobs import cache, cached
from bnapp.jobs.errors import user_message
from bnapp.jobs.page_analyses import Call
from bnapp.jobs.scheduler import Job
from bnapp.report import page_tables
from bnapp.report.cells import table_csv
from bnapp.report.export import chart_png, chart_svg, safe_filename, table_xlsx
from bnapp.report.markup import escape_md
from bnapp.ui import state

TRAIN_PAGE = "pages/train.py"
DATA_PAGE = "pages/data.py"
POLL_SECONDS = 1.0
# how long a click submitting a job waits for it before it shows the job's progress: a job done
# by then (a small data set, a warm worker) shows its result at once, without polls and reruns
QUICK_SECONDS = 1.0
MAX_TABLE_ROWS = 5_000  # rows a table sends to the browser; its downloads hold every row
# a local file: an emoji or :material: page icon makes the browser fetch it from Google or a CDN
FAVICON = Path(__file__).with_name("favicon.svg")
logger = logging.getLogger(__name__)
# -------------------------------------------------------------------------- figures and tables

class _Unchecked:
    """A chart as st.altair_chart takes it (it only calls to_dict), whose Vega-Lite spec skips
    Altair's check against the Vega-Lite schema: a fifth of a page's drawing time, and the
    report tests check every chart builder's output against the schema already."""

    def __init__(self, chart: alt.TopLevelMixin):
        self.chart = chart

    def to_dict(self, **kwargs) -> dict:
        return self.chart.to_dict(validate=False, **kwargs)


def figure(chart: alt.TopLevelMixin, name: str, *, caption: str | None = None,
           export: Callable[[], alt.TopLevelMixin] | None = None) -> None:
    """Draw a chart with PNG and SVG download buttons; the files render only when clicked, from
    export() when given (the same figure in more detail than the screen needs, built then)."""
    st.altair_chart(_Unchecked(chart), theme=None)
    if caption:
        st.caption(caption)
    stem = safe_filename(name)
    download = (lambda: chart) if export is None else export
    with st.container(horizontal=True):
        st.download_button("PNG", lambda: chart_png(download()), f"{stem}.png", "image/png",
                           key=f"png-{stem}", on_click="ignore", icon=":material/download:",
                           help="The figure at twice screen resolution, for slides and papers")
        st.download_button("SVG", lambda: chart_svg(download()), f"{stem}.svg", "image/svg+xml",
                           key=f"svg-{stem}", on_click="ignore", icon=":material/download:",
                           help="The figure as vector graphics, for journals and editing")


def table(df: pd.DataFrame, name: str, *, hide_index: bool = True,
          max_rows: int = MAX_TABLE_ROWS, **kwargs) -> None:
    """Draw a table's first max_rows rows (a large upload's dropped rows would otherwise all go
    to the browser) with CSV and XLSX download buttons holding all of it under the headers it is
    shown with (text cells safe against formulas)."""
    if hide_index:  # a shown index is pinned already
        kwargs["column_config"] = _pin_key_column(df, kwargs.get("column_config"))
    st.dataframe(df.head(max_rows), hide_index=hide_index, **kwargs)
    if len(df) > max_rows:
        st.caption(f"First {max_rows:,} of {len(df):,} rows shown; the downloads hold all "
                   f"{len(df):,}.")
    stem = safe_filename(name)
    df = with_headers(df, kwargs.get("column_config"))
    with st.container(horizontal=True):
        st.download_button("CSV", lambda: table_csv(df), f"{stem}.csv", "text/csv",
                           key=f"csv-{stem}", on_click="ignore", icon=":material/download:",
                           help="The table as CSV (UTF-8, comma separated)")
        st.download_button(
            "XLSX", lambda: table_xlsx({stem: df}), f"{stem}.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            key=f"xlsx-{stem}", on_click="ignore", icon=":material/download:",
            help="The table as an Excel workbook")


def with_headers(df: pd.DataFrame, config: dict | None) -> pd.DataFrame:
    """The table with the headers it is shown with (a download's 'RMSE (mmol/L)', not 'rmse':
    a number in the user's unit says its unit)."""
    labels = {column: given if isinstance(given, str) else given.get("label")
              for column, given in (config or {}).items() if given is not None}
    return df.rename(columns={c: label for c, label in labels.items() if label})


def _pin_key_column(df: pd.DataFrame, config: dict | None) -> dict:
    """The column config with the table's first column, what each row is (a method, an input,
    a network), pinned: it stays in view when a wide table scrolls sideways in a narrow window.
    A column hidden on purpose (None) stays hidden."""
    config = dict(config or {})
    if df.columns.empty:
        return config
    first = df.columns[0]
    given = config.get(first, "")
    if given is None:
        return config
    if isinstance(given, str):  # a label, or not configured: keep the label
        given = st.column_config.Column(given or None)
    pinned = given.get("pinned")
    config[first] = {**given, "pinned": True if pinned is None else pinned}
    return config


def details(label: str, *, key: str) -> DeltaGenerator | None:
    """An expander whose content is sent only once it is opened (opening it runs the page
    again): its container while open, else None. For the numbers behind a figure, which a
    closed expander would still send to the browser, to be laid out there on every visit."""
    box = st.expander(label, key=key, on_change="rerun")
    return box if box.open else None


# ----------------------------------------------------------------------------- guards

def need_run() -> state.RunEntry:
    """The session's active run; otherwise tell the user what to do first and stop the page."""
    entry = state.active_run()
    if entry is None:
        st.info("No trained network yet. Train one on the Train page (the demo cohort works "
                "out of the box), or reopen a cached run there; this page then shows its results.")
        st.page_link(TRAIN_PAGE, label="Go to Train", icon=":material/model_training:",
                     help="Open the Train page to train a network or reopen a cached run")
        end_page()
    return entry


@st.cache_data(max_entries=256, show_spinner="Computing…")
def _memo(name: str, run_key: str, arguments: tuple, _fn, _run, _args: tuple, _kwargs: dict):
    return cache.cached_analysis(run_key, _fn, _run, *_args, **_kwargs)


def compute(entry: state.RunEntry, fn: Callable, *args, **kwargs):
    """fn(run, *args, **kwargs) memoized per run key and arguments (by name, defaults filled
    in), across pages and sessions in memory, and on disk beside the cached run, so an app
    restart does not recompute it. fn: a module-level function taking the run first and
    returning a DataFrame (or a tuple or dict of them)."""
    arguments = cache.call_arguments(fn, args, kwargs)
    return _memo(cache.analysis_name(fn), entry.key, tuple(sorted(arguments.items())), fn,
                 entry.run, args, kwargs)


def compute_call(entry: state.RunEntry, call: Call):
    """compute() of one of the pages' declared analyses (bnapp.jobs.page_analyses)."""
    return compute(entry, call.fn, *call.args, **call.kwargs)


def compute_soon(entry: state.RunEntry, call: Call):
    """compute_call, except while a worker still prepares this run's first visits and has not
    stored this call yet: then the call without cohort replicates (the folds' intervals, a
    tenth of a second instead of the seconds the retrained replicates take on a page visited
    right after training) and a line saying so; the page runs again once the full one is in."""
    key = cache.call_key(entry.key, call.fn, call.args, call.kwargs)
    if not cached.being_prepared(entry.key) or cache.has_analysis(entry.key, key):
        return compute_call(entry, call)
    st.caption(":material/hourglass_top: Intervals over cohorts like this one are being "
               "computed in the background, seconds after training; until they are in, the "
               "intervals below describe this data set's folds, and the page updates itself.")
    st.fragment(_rerun_when_stored, run_every=POLL_SECONDS)(entry.key, key)
    return compute_call(entry, call.without_replicates())


def _rerun_when_stored(run_key: str, key: str) -> None:
    if cache.has_analysis(run_key, key) or not cached.being_prepared(run_key):
        st.rerun(scope="app")


def layer_picker(spec: ArchSpec, *, key: str, container=st,
                 help: str = "The input BN sees the patient variables; a hidden BN sees the "
                             "hidden layer's nodes.") -> Layer:
    """Radio of the run's BN-able layers: the input, then each hidden layer."""
    return container.radio("Layer", network_layers(spec), key=key, help=help,
                           format_func=lambda c: page_tables.layer_title(spec, c))


# ------------------------------------------------------------------------------- sidebar

def cache_warnings(warnings) -> None:
    """The cache's complaints about a job or run, in plain words with the way out."""
    for warning in dict.fromkeys(warnings):
        text = escape_md(warning)
        if state.NOT_CACHED in warning:
            text = ("This result is available in this tab but was not saved, so it is lost "
                    f"when the tab closes and computed again next time ({text}). To save "
                    "results, free disk space, or set `BNAPP_CACHE_DIR` to a writable "
                    "directory and restart the app.")
        st.warning(text, icon=":material/save:")


def duration(seconds: float) -> str:
    """Seconds as a person reads them: 42 s, 3 min 05 s, 2 h 07 min."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _job_line(job: Job) -> str:
    snap = job.snapshot()
    if snap["state"] == "queued":
        where = f" (place {snap['position']} in queue)" if snap["position"] else ""
        return f"queued{where}"
    if snap["state"] == "running":
        eta, speed = snap["eta_seconds"], snap["epochs_per_second"]
        epochs = (f"{snap['epochs_done']}/{snap['epochs_total']} epochs · "
                  if snap["epochs_total"] else "")
        rate = ("" if speed is None else
                f"{speed:,.0f} epochs/s · " if speed >= 100 else f"{speed:.3g} epochs/s · ")
        left = f" · about {duration(eta)} left" if eta is not None else ""
        return f"{epochs}{rate}{duration(snap['elapsed'])}{left}"
    if snap["state"] == "failed":
        return f"failed: {snap['error']}"
    if snap["state"] == "cancelled":
        return "cancelled; nothing was saved"
    return snap["message"]  # done, or done (from the cache)


def _jobs_panel() -> None:
    jobs = state.jobs()
    if state.collect_finished():
        st.rerun(scope="app")  # a new run or grid: every page should see it
    if not jobs:
        st.caption("No jobs yet in this session.")
        return
    for job in jobs[:8]:
        job_status(job, key="sidebar")


def job_status(job: Job, *, key: str, warnings: bool = True) -> None:
    """One job: its label, a progress bar with epochs and ETA, and Cancel while it runs; then
    how it ended, with the cache's warnings unless warnings=False (a page showing them itself)."""
    st.text(job.label)
    if job.state in ("queued", "running"):
        st.progress(job.progress, text=_job_line(job))
        if st.button("Cancel", key=f"cancel-{key}-{job.id}",
                     help="Stop this job; results already cached are kept"):
            job.cancel()
    elif job.state == "failed":
        st.error(escape_md(_job_line(job)))
    else:
        st.caption(escape_md(_job_line(job)))
    if warnings:
        cache_warnings(job.warnings)
    if job.kind == "train" and job.state == "done":
        _share(job, key)


def _share(job: Job, key: str) -> None:
    """The way to give someone this run: its page's address opens it in their browser too."""
    if state.is_shared(job):
        st.caption("Shared: anyone who opens this page's address sees this run and its rows.")
    else:
        st.button("Share", key=f"share-{key}-{job.id}", icon=":material/share:",
                  on_click=state.share, args=(job,),
                  help="Let anyone who opens this page's address (URL) see this run, with the "
                       "rows it shows. Until then the address shows it only in this browser.")


def other_data(entry: state.RunEntry, ds) -> str:
    """Markdown naming the data set entry's run was trained on, when ds is not that one."""
    name = escape_md(entry.data_name or "another data set")
    if entry.data_name == ds.name:
        return f"another version of **{name}** (other rows, columns, units or rules)"
    return f"**{name}**, not on {escape_md(ds.name)}"


def _other_data(entry: state.RunEntry, ds) -> None:
    """Say that the run shown was not trained on the data set above, and what to do."""
    st.warning(f"This run was trained on {other_data(entry, ds)}: its pages show the run, but "
               "its data set's rows, validation report and groups are not at hand. To see them, "
               "load its file again on Data with the same columns, units and rules; or train "
               "on the data set above.", icon=":material/link_off:")


def sync_jobs() -> None:
    """Before a page: this session's data set and jobs (a reloaded tab's: the data its browser
    last had, the jobs its URL names that this browser may open), and the runs of those
    finished since the last poll opened, so the page shows them now rather than after a rerun."""
    state.restore_data()
    if state.restore_jobs():
        st.info("This address names runs started in another browser. They are not shown here "
                "unless their owner shares them (Share, beside the job).",
                icon=":material/lock:")
    state.collect_finished()


def end_page() -> NoReturn:
    """End the page here (no run yet, nothing more to show): the sidebar, then st.stop(). The
    sidebar is drawn after the page, but st.stop() ends the whole script run, so on every page
    that stopped early it went missing."""
    guarded(sidebar, "in the sidebar")()
    st.stop()


def sidebar() -> None:
    """The current data set and this session's jobs, on every page. Drawn after the page, so
    that what the page changed (a Train click's run, an upload's data set) shows in the same
    script run: no rerun just for the sidebar."""
    ds = state.dataset()
    with st.sidebar:
        st.subheader("Data set")
        st.text(f"{ds.name}\n{ds.n_usable} rows usable · {ds.n_dropped} dropped")
        if state.is_demo(ds):
            st.caption("Synthetic demo cohort (two-pool urea kinetics). Load your own on Data.")
        gone = state.data_gone()
        if gone:
            st.warning(f"**{escape_md(gone)}**, the data set this browser used last, is no "
                       f"longer kept (this server keeps the last {state.KEPT_BROWSERS} "
                       "browsers' data sets, until it restarts). Load its file again on Data; "
                       "runs trained on it stay in the cache.", icon=":material/cloud_off:")
        st.selectbox("Show urea in", units.UREA_UNITS, key=state.display_switch(),
                     on_change=state.switch_display_units, format_func=units.UNIT_LABELS.get,
                     help="Every page, table, download and report shows urea, its predictions "
                          "and errors in this unit; the calculations are unchanged (urea "
                          "mmol/L × 6.006 = mg/dL, BUN mg/dL × 2.144 = urea mg/dL).")
        entry = state.active_run()
        st.subheader("Run shown")
        st.text("none yet: train one on Train" if entry is None else
                entry.label if entry.saved else f"{entry.label} (not saved)")
        if entry is not None and not state.has_own_data(entry):
            _other_data(entry, ds)
        st.subheader("Jobs")
        busy = any(j.state in ("queued", "running") for j in state.jobs())
        st.fragment(guarded(_jobs_panel, "in the job list"),
                    run_every=POLL_SECONDS if busy else None)()


# ------------------------------------------------------------------------------ page runner

def guarded(fn: Callable, where: str = "here", name: str | None = None) -> Callable:
    """fn, with any error it raises shown as a message (the session's data and runs stay as
    they were): its own text when written for the user, else a plain 'something went wrong'
    with the traceback in the log under `name` (default: fn's). Fragments need this too: their
    errors never reach run_page."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - the app keeps serving whatever was raised
            message = user_message(err)
            if message is not None:
                st.error(escape_md(message))
                return None
            logger.exception("%s failed", name or getattr(fn, "__qualname__", fn))
            st.error(f"Something went wrong {where} ({type(err).__name__}). Your data and "
                     "results are kept; try again, or report this with the terminal's log.")
            return None
    return run


def run_page(page) -> None:
    """Run a page; any error becomes a message, and the cache's warnings meanwhile (a result
    not saved) plain lines under it."""
    with cache.collected_warnings() as warned:
        guarded(page.run, "on this page", f"page {getattr(page, 'title', page)}")()
    cache_warnings(warned)
