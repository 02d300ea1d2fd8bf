"""One browser session's state: its data set, chosen columns, opened runs and background jobs.

Everything lives in st.session_state, so each tab or user has their own; the job manager and
the disk cache are shared, keyed by content, so equal work is still done once. The session's job
ids are also kept in its URL (?jobs=id,id), so a reloaded tab finds its jobs again; a job opens
from a URL only in the browser that started it (or after its user shared it), so a copied link
is no key to the patient data it trained on. The session's data set and column choices are
kept for its browser too (in this server's memory, never on disk or for another browser), so a
reloaded tab finds its run beside the data it was trained on.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import streamlit as st

from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol
from bnapp.engine.results import RunResult
from bnapp.intake import data, duration, groups, units
from bnapp.jobs import cache, page_analyses
from bnapp.jobs.errors import JobFailed
from bnapp.jobs.scheduler import Job, JobManager, job_manager

JOBS_PARAM = "jobs"  # the URL query parameter naming this session's jobs
# Streamlit's XSRF cookie (server.enableXsrfProtection, on in .streamlit/config.toml): 128 random
# bits the server gives each browser once and keeps; a job's link is bound to it
BROWSER_COOKIE = "_streamlit_xsrf"
DISPLAY_KEY = "display_units"  # the urea unit values are shown in
DISPLAY_SWITCH = "display_units_switch"  # the sidebar's widget setting it (widget state is let
# go on a script run that does not draw the widget, so the choice itself is kept apart)
NOT_CACHED = "not cached"  # in bnapp.jobs.cache's warnings when a result could not be stored
UPLOAD = "data_upload"  # the Data page's record of the uploaded file: name, bytes, mapping
# what a reloaded tab gets back: the data set, the upload it came from, the choices made on it
KEPT_KEYS = ("dataset", UPLOAD, "features", "target", "group_by", "session_length")
KEPT_BROWSERS = 8  # browsers whose last data set is kept in memory; the oldest goes first
LET_GO_NAMES = 1000  # names of data sets let go, kept to tell their browser


@dataclass(frozen=True)
class RunEntry:
    """A trained run opened in this session."""

    key: str  # the cache key: data content, columns, architecture and protocol
    label: str  # what the user sees: architecture, protocol, data set
    run: RunResult
    data_name: str
    warnings: tuple[str, ...] = ()  # the cache's complaints while training it (e.g. disk full)

    @property
    def saved(self) -> bool:
        """False when the cache could not store it: it then lives in this tab only."""
        return not any(NOT_CACHED in w for w in self.warnings)


def _state():
    return st.session_state


# ------------------------------------------------------------------------------------ data set

def dataset() -> data.Dataset:
    """The session's data set: the demo cohort until the user loads their own."""
    if "dataset" not in _state():
        _state().dataset = data.demo_dataset()
    return _state().dataset


def is_demo(ds: data.Dataset) -> bool:
    return ds.name == data.DEMO_PATH.name


@dataclass
class _Kept:
    """Each browser's (hash of its secret) last data set and choices, least recent first, and
    the names of those let go for newer ones (so a reload can say what is gone)."""

    by_browser: OrderedDict[str, dict] = field(default_factory=OrderedDict)
    let_go: OrderedDict[str, str] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@st.cache_resource
def _kept() -> _Kept:
    return _Kept()  # one for the server process, in memory only: patient rows never hit disk


def _remember() -> None:
    """Keep this session's data set and choices for its browser (none without an identity)."""
    me, kept = browser_id(), _kept()
    if me is None:
        return
    with kept.lock:
        kept.by_browser[me] = {k: _state()[k] for k in KEPT_KEYS if k in _state()}
        kept.by_browser.move_to_end(me)
        kept.let_go.pop(me, None)
        while len(kept.by_browser) > KEPT_BROWSERS:
            browser, old = kept.by_browser.popitem(last=False)
            if "dataset" in old:
                kept.let_go[browser] = old["dataset"].name
        while len(kept.let_go) > LET_GO_NAMES:
            kept.let_go.popitem(last=False)


def restore_data() -> None:
    """A new session (a reloaded tab) takes back the data set and choices its browser last had,
    or learns the name of the one let go (data_gone)."""
    me, kept = browser_id(), _kept()
    if "dataset" in _state() or me is None:
        return
    with kept.lock:
        found, gone = kept.by_browser.get(me), kept.let_go.get(me)
    if found is None:
        _state().data_gone = gone
        return
    _state().update(found)
    if UPLOAD in found:  # a copy: the Data page marks its own record (e.g. a refused reload)
        _state()[UPLOAD] = dict(found[UPLOAD])


def data_gone() -> str | None:
    """The name of this browser's last data set when the server let it go before this session
    could take it back (until another is loaded)."""
    return _state().get("data_gone")


def set_dataset(ds: data.Dataset) -> None:
    """Make ds current; the column choice falls back to what ds has."""
    _state().dataset = ds
    _state().data_gone = None
    available = set(ds.frame.columns)
    chosen = [f for f in features() if f in available]
    _state().features = chosen if chosen else [f for f in data.STUDY_INPUTS if f in available]
    if target() not in available:
        _state().target = data.STUDY_TARGET
    if group_by() not in groups.group_columns(ds):
        set_group_by(None)
    _suggest_grouping(ds)
    _suggest_length(ds)
    _state()[DISPLAY_KEY] = ds.urea_units  # shown in the upload's units until switched
    _remember()


def display_units() -> units.DisplayUnits:
    """The units the pages show values in: the sidebar's switch, first the data set's urea
    units (the demo's mg/dL)."""
    if DISPLAY_KEY not in _state():
        _state()[DISPLAY_KEY] = dataset().urea_units
    return units.DisplayUnits(_state()[DISPLAY_KEY])


def display_switch() -> str:
    """The sidebar switch's key, set to the unit shown before it is drawn: the browser keeps a
    keyed widget's own value otherwise, so a new data set's units would not reach it."""
    _state()[DISPLAY_SWITCH] = display_units().urea
    return DISPLAY_SWITCH


def switch_display_units() -> None:
    """The sidebar switch's callback: show values in the unit it now says."""
    _state()[DISPLAY_KEY] = _state()[DISPLAY_SWITCH]


def _suggest_grouping(ds: data.Dataset) -> None:
    """A data set with a patient or unit identifier of enough groups for the default folds
    starts grouped by it (the Train page preselects grouped k-fold once, the Grid page the
    column); a few units (two centres) are left to the Data page's advice."""
    found = groups.likely_id_columns(ds)
    ids = found.loc[found["groups"] >= groups.DEFAULT_FOLDS, "column"].tolist()
    if group_by() is None and ids:
        set_group_by(ids[0])
        _state().suggested_group = ids[0]


def _suggest_length(ds: data.Dataset) -> None:
    """Session lengths from the data set's length column when it has a plausible one."""
    length = session_length()
    numeric = [c for c in ds.extra_columns if pd.api.types.is_float_dtype(ds.frame[c])]
    kept = [length.column] if length.column in numeric else []
    for column in [*kept, *duration.duration_columns(numeric), None]:  # None always does
        chosen = duration.SessionLength(column, length.minutes, length.access)
        try:
            duration.session_hours(ds, chosen)
        except data.DataError:
            continue
        set_session_length(chosen)
        return


def take_suggested_group() -> str | None:
    """The identifier column a new data set was grouped by, once (then None)."""
    column = _state().pop("suggested_group", None)
    return column if column == group_by() else None


def features() -> list[str]:
    return list(_state().get("features", data.STUDY_INPUTS))


def target() -> str:
    return _state().get("target", data.STUDY_TARGET)


def set_columns(features_: list[str], target_: str) -> None:
    if not features_:
        raise data.DataError("choose at least one input column")
    if target_ in features_:
        raise data.DataError(f"{target_!r} cannot be both an input and the target")
    _state().features, _state().target = list(features_), target_
    _remember()


def group_by() -> str | None:
    """The column whose rows grouped validation keeps together (None: rows are independent)."""
    return _state().get("group_by")


def set_group_by(column: str | None) -> None:
    _state().group_by = column
    _remember()


def group_labels(column: str | None):
    """The session data's labels in a grouping column (None for no column); DataError when the
    column cannot group rows."""
    return None if column is None else groups.group_labels(dataset(), column)


def run_groups(entry: RunEntry) -> tuple[str, ...] | None:
    """The labels a grouped run was trained with, from this session's data set when the run was
    trained on it (its cohort intervals resample those groups), else None."""
    column = entry.run.protocol.get("group_by")
    if column is None or not cache.trained_on(entry.key, entry.run, dataset()):
        return None
    return page_analyses.run_groups(entry.run, group_labels(column))


def session_length() -> duration.SessionLength:
    """Where the formulas take each session's length from (the Data page's choice)."""
    return _state().get("session_length", duration.SessionLength())


def set_session_length(length: duration.SessionLength) -> None:
    _state().session_length = length
    _remember()


def session_hours(run: RunResult) -> float | np.ndarray:
    """The session length in hours the formulas use on a run's rows: one per row from the data
    set's length column when the run's rows are that data set's, else the length in minutes."""
    length = session_length()
    default = length.minutes / 60.0
    if length.column is None or run.row_ids is None:
        return default
    ds = dataset()
    pos = pd.Index(ds.row_numbers).get_indexer(run.row_ids)
    same_rows = (pos >= 0).all() and run.target in ds.frame.columns and np.array_equal(
        ds.frame[run.target].to_numpy(dtype=np.float64)[pos], run.y)
    if not same_rows:  # a run of another data set
        return default
    return duration.session_hours(ds, length)[pos]


def formula_length(run: RunResult) -> tuple[float | np.ndarray, str]:
    """(session hours, vascular access) the formulas use on a run's rows."""
    return session_hours(run), session_length().access


# ----------------------------------------------------------------------------------------- runs

def runs() -> dict[str, RunEntry]:
    """Runs opened in this session, by cache key, oldest first."""
    return _state().setdefault("runs", {})


def add_run(entry: RunEntry, *, activate: bool = True) -> None:
    runs()[entry.key] = entry
    if activate:
        _state().active_run = entry.key


def active_run() -> RunEntry | None:
    """The run the analysis pages show (the last trained or opened one)."""
    return runs().get(_state().get("active_run"))


def set_active(key: str) -> None:
    if key in runs():
        _state().active_run = key


def has_own_data(entry: RunEntry) -> bool:
    """Whether this session's data set is the one entry's run was trained on (its rows, their
    validation report and groups are then at hand); remembered per data set, as the check
    hashes every row."""
    ds, memo = dataset(), _state().setdefault("own_data", {})
    if memo.get(entry.key, (None,))[0] is not ds:
        memo[entry.key] = (ds, cache.trained_on(entry.key, entry.run, ds))
    return memo[entry.key][1]


def run_label(run: RunResult, data_name: str) -> str:
    return f"{run.label} · {data_name}"


def open_cached(key: str) -> RunEntry | None:
    """Load a run from the disk cache into this session (None when gone or corrupted)."""
    run = cache.load("run", key)
    if run is None:
        return None
    meta = cache.entries().set_index("key")
    name = str(meta.at[key, "data_name"]) if key in meta.index else ""
    entry = RunEntry(key, run_label(run, name), run, name)
    add_run(entry)
    return entry


def cached_runs() -> pd.DataFrame:
    """Runs on disk that this session could reopen, newest first."""
    listing = cache.entries()
    return listing[listing["kind"] == "run"].reset_index(drop=True)


# ----------------------------------------------------------------------------------------- jobs

def submit_training(spec: ArchSpec, protocol: Protocol) -> Job:
    """Queue a cross-validated run of the session's data; the same request shares one job."""
    ds = dataset()
    data.require_rows(ds, protocol.folds, protocol.kind)
    cols, tgt = features(), target()
    job = job_manager().submit_train(
        ds.X(cols), ds.y(tgt), spec, protocol, features=cols, target=tgt,
        data_key=ds.fingerprint(), row_ids=ds.row_numbers, groups=group_labels(protocol.group_by),
        data_name=ds.name)
    track(job, ds.name)
    return job


def submit_grid(protocol: Protocol, specs=None, stability: bool = True) -> Job:
    """The grid (specs None: the study's 480 networks) on this session's data, grouped when the
    protocol is."""
    ds = dataset()
    data.require_rows(ds, protocol.folds, protocol.kind)
    cols, tgt = features(), target()
    job = job_manager().submit_grid(ds.X(cols), ds.y(tgt), protocol, specs, features=cols,
                                    target=tgt, data_key=ds.fingerprint(), data_name=ds.name,
                                    groups=group_labels(protocol.group_by), stability=stability)
    track(job)
    return job


def export_job(entry: RunEntry, options: dict) -> Job | None:
    """The job building this run's export with these options and this session's data set, if
    any session submitted it (a reloaded page finds its finished bundle)."""
    return job_manager().find(JobManager.export_key(entry.key, entry.data_name, dataset(), options))


def submit_export(entry: RunEntry, options: dict) -> Job:
    """Build the ZIP and the HTML report in the background (the figures take seconds to draw)."""
    job = job_manager().submit_export(entry.run, run_key=entry.key, data_name=entry.data_name,
                                      dataset=dataset(), options=options)
    track(job)
    return job


@dataclass
class _Links:
    """The browsers (hashes of their secrets) that submitted each job, and the jobs shared on
    purpose."""

    owners: dict[str, set[str]] = field(default_factory=dict)
    shared: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


@st.cache_resource
def _links() -> _Links:
    return _Links()  # one for the server process: every session's jobs


def browser_id() -> str | None:
    """This browser's identity: a hash of the per-browser secret in Streamlit's XSRF cookie;
    None without one (XSRF protection off, or a client that keeps no cookies)."""
    from streamlit.web.server.starlette.starlette_app_utils import decode_xsrf_token_string

    cookie = st.context.cookies.get(BROWSER_COOKIE)
    token = decode_xsrf_token_string(cookie)[0] if cookie else None
    return hashlib.sha256(token).hexdigest() if token else None


def may_open(job_id: str) -> bool:
    """Whether this session may follow a job named in its URL: this browser started it, or its
    user shared it."""
    links, me = _links(), browser_id()
    with links.lock:
        return job_id in links.shared or me in links.owners.get(job_id, ())


def share(job: Job) -> None:
    """Let anyone who opens a URL naming this job see it (its run and the rows it shows)."""
    links = _links()
    with links.lock:
        links.shared.add(job.id)


def is_shared(job: Job) -> bool:
    return job.id in _links().shared


def restore_jobs() -> int:
    """Keep this session's job ids in its URL; a new session (a reloaded tab) first tracks the
    jobs its URL names that this server still knows and this browser may open (may_open), so a
    training started before the reload shows again, and opens when done. Ids are random (128
    bits); unknown ones and others' are dropped from the URL. Returns how many of the URL's
    known jobs this browser may not open."""
    refused = 0
    if "job_ids" not in _state():
        wanted = st.query_params.get(JOBS_PARAM, "").split(",")
        known = [i for i in dict.fromkeys(wanted) if job_manager().get(i) is not None]
        _state().job_ids = [i for i in known if may_open(i)]
        refused = len(known) - len(_state().job_ids)
    _write_url()  # also after a page change, which clears the URL's parameters
    return refused


def _write_url() -> None:
    manager = job_manager()
    ids = ",".join(i for i in _state().get("job_ids", []) if manager.get(i) is not None)
    if st.query_params.get(JOBS_PARAM, "") != ids:
        if ids:
            st.query_params[JOBS_PARAM] = ids
        else:
            del st.query_params[JOBS_PARAM]


def track(job: Job, data_name: str = "") -> None:
    """Follow job in this session; data_name: this session's name for its data (a job shared
    with another session that sent the same content under another name keeps the first's)."""
    ids = _state().setdefault("job_ids", [])
    if job.id not in ids:
        ids.append(job.id)
    me, links = browser_id(), _links()
    if me is not None:
        with links.lock:  # equal requests from two browsers share one job: both own it
            links.owners.setdefault(job.id, set()).add(me)
    if data_name:
        _state().setdefault("job_data_names", {})[job.id] = data_name
    _write_url()


def jobs() -> list[Job]:
    """This session's jobs, newest first (others' jobs are not shown)."""
    manager = job_manager()
    found = (manager.get(i) for i in reversed(_state().get("job_ids", [])))
    return [j for j in found if j is not None]


def collect_finished() -> list[Job]:
    """Open the runs of newly finished training jobs; returns the jobs collected this call."""
    seen = _state().setdefault("collected_jobs", set())
    fresh = [j for j in jobs() if j.state == "done" and j.id not in seen]
    for job in reversed(fresh):  # oldest first, so the newest run and grid are the ones shown
        seen.add(job.id)
        try:
            result = job.result()
        except JobFailed:  # the manager dropped it meanwhile to bound memory
            continue
        if job.kind == "train":
            name = _state().get("job_data_names", {}).get(job.id) or job.data_name
            add_run(RunEntry(job.key, run_label(result, name), result, name, tuple(job.warnings)))
        elif job.kind == "grid":
            _state().grid_result = result
            _state().grid_basis = (job.data_key, job.features, job.target)
    return fresh


def grid_result() -> pd.DataFrame | None:
    return _state().get("grid_result")


def grid_target() -> str:
    """The column the shown grid predicted (the columns chosen may have changed since)."""
    basis = _state().get("grid_basis")
    return basis[2] if basis else target()


def grid_is_current() -> bool:
    """Whether the shown grid was run on the data set and columns chosen now, so its best
    networks can be trained on them."""
    basis = _state().get("grid_basis")
    return basis is None or basis == (dataset().fingerprint(), tuple(features()), target())
