"""Data: load a file (or the demo cohort), map its columns and units, see what was kept and
dropped, look at the distributions, and choose the network's inputs and target."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from bnapp.intake import columns, data, duration, groups, units
from bnapp.intake.data import DataError
from bnapp.intake.kinetics import ACCESS_TYPES
from bnapp.intake.rules import UeqRule
from bnapp.intake.units import (
    DESCRIPTIONS,
    UNIT_LABELS,
    UREA_COLUMNS,
    UREA_RANGE,
    UREA_UNITS,
    label,
)
from bnapp.report import data_charts
from bnapp.report.export import safe_filename
from bnapp.ui import state, widgets
from bnapp.ui.widgets import escape_md

UPLOAD = state.UPLOAD  # the file in the uploader: id, name, bytes, headers, mapping, error
TAKEN = "upload_taken"  # the id of the file this session's uploader last held
FEATURES, TARGET = "data_features", "data_target"  # widget keys of the column choice
TOLERANCE_KINDS = {"percent": "percent of Upos", "cv": "the assay's CV (percent)"}
ACCESS_LABELS = {"arterial": "arteriovenous (fistula or graft)", "venous": "venous catheter"}
ONE_LENGTH = "one length for every session"
LENGTH_KEYS = ("length_column", "length_minutes", "length_access")  # widget keys


def _map_key(canon: str) -> str:
    return f"map_{canon}"


# ------------------------------------------------------------------------------------ loading

def _ueq_rule() -> UeqRule:
    """The Ueq < Upos rule as the mapping form sets it (the study's until changed)."""
    value = float(st.session_state.get("ueq_tolerance", 0.0))
    keep = bool(st.session_state.get("ueq_keep", False))
    if st.session_state.get("ueq_tolerance_kind") == "cv":
        return UeqRule.from_cv(value, keep)
    return UeqRule(value, keep)


def _load(record: dict, mapping: dict[str, str] | None, units: str) -> bool:
    """Load the uploaded file; a refusal is kept on the record and the current data stays."""
    try:
        ds = data.load_dataset(record["bytes"], record["name"], mapping=mapping, units=units,
                               ueq=_ueq_rule())
    except DataError as err:
        record["error"] = str(err)
        return False
    record.update(error=None, mapping=dict(ds.mapping), units=units)
    state.set_dataset(ds)
    _reset_column_choice()
    return True


def _take_upload(upload) -> None:
    """Read a file the first time the uploader holds it (by file_id), not on every rerun."""
    record = st.session_state.get(UPLOAD)
    if upload is None:  # the uploader was cleared (not a reloaded tab's): the data set stays
        if record is not None and record["id"] == st.session_state.get(TAKEN):
            st.session_state.pop(UPLOAD)
        return
    if record is not None and record["id"] == upload.file_id:
        return
    st.session_state[TAKEN] = upload.file_id
    record = {"id": upload.file_id, "name": upload.name, "bytes": upload.getvalue(),
              "headers": [], "mapping": {}, "error": None}
    st.session_state[UPLOAD] = record
    try:
        record["headers"] = data.read_headers(record["bytes"], record["name"])
    except DataError as err:
        record["error"] = str(err)
        return
    record["mapping"] = data.detect_mapping(record["headers"])
    for canon, header in record["mapping"].items():
        st.session_state[_map_key(canon)] = header
    _load(record, None, st.session_state.get("data_units", "mg/dL"))


def _use_demo() -> None:
    state.set_dataset(data.demo_dataset())
    _reset_column_choice()
    if UPLOAD in st.session_state:
        st.session_state[UPLOAD]["error"] = None


def _source_section() -> None:
    upload = st.file_uploader(
        "Hemodialysis sessions (CSV or XLSX)", type=["csv", "tsv", "txt", "xlsx"], key="upload",
        help="One row per dialysis session with pre-dialysis urea (Upre), urea at 120 min (U120), "
             "post-dialysis urea (Upos), pre-dialysis weight in kg (PP), ultrafiltration in "
             "litres (UF) and equilibrated urea (Ueq). Column names are recognised in any order "
             "and case; the file stays on this computer. Files up to "
             f"{st.get_option('server.maxUploadSize')} MB are accepted.")
    st.button("Use the demo cohort", key="demo",
              on_click=widgets.guarded(_use_demo, "while loading the demo cohort"),
              help="A synthetic cohort of 200 sessions simulated with a two-pool urea kinetic "
                   "model: no real patients. Use it to try every page.")
    _take_upload(upload)


def _mapping_section(record: dict) -> None:
    """For the uploaded file: which column holds each study variable, and the urea units."""
    unmapped = [c for c in data.STUDY_COLUMNS if record["headers"] and
                not record["mapping"].get(c)]
    if record.get("error") and unmapped:
        st.warning(f"Which column holds {', '.join(unmapped)}? Choose it below, then load the "
                   f"file. The data set in use is still {escape_md(state.dataset().name)}.",
                   icon=":material/table_edit:")
    elif record.get("error"):
        st.error(escape_md(record["error"]))
        st.caption(f"The data set in use is still {escape_md(state.dataset().name)}. Fix the "
                   "file, or pick the columns and units below and load it again.")
    if not record["headers"]:
        return
    title = f"Columns, units and rules of {escape_md(record['name'])}"
    with st.expander(title, expanded=bool(record.get("error"))), st.form("mapping"):
        cells = st.columns(3)
        for i, canon in enumerate(data.STUDY_COLUMNS):
            key = _map_key(canon)
            if key not in st.session_state:  # forgotten on another page: the last mapping used
                st.session_state[key] = record["mapping"].get(canon)
            cells[i % 3].selectbox(
                label(canon), record["headers"], key=key, placeholder="not found: choose",
                help=f"The column of your file that holds {DESCRIPTIONS[canon]}.")
        if "data_units" not in st.session_state:
            st.session_state["data_units"] = record.get("units", "mg/dL")
        st.selectbox(
            "Urea units in this file", UREA_UNITS, key="data_units", format_func=UNIT_LABELS.get,
            help="How Upre, U120, Upos and Ueq are given. mmol/L is multiplied by 6.006 and BUN "
                 "(blood urea nitrogen, mg/dL) by 2.144 to get urea in mg/dL. A column whose "
                 "name states its unit, e.g. 'Upre (mmol/L)', is read in that unit.")
        _urea_units_read()
        _rule_controls()
        if st.form_submit_button("Load with these columns and units", key="apply_mapping",
                                 help="Read the file again with the columns and unit chosen "
                                      "above; the current data set stays if the file is refused."):
            mapping = {c: st.session_state[_map_key(c)] for c in data.STUDY_COLUMNS
                       if st.session_state[_map_key(c)]}
            if _load(record, mapping, st.session_state["data_units"]):
                st.rerun()


def _urea_units_read() -> None:
    """Beside the file's urea units: the unit each urea column's header states, the one it is
    read in, and why (a header's own unit wins, as the reading does)."""
    headers = {c: st.session_state.get(_map_key(c)) for c in UREA_COLUMNS}
    table = columns.urea_units_table(headers, st.session_state["data_units"])
    st.caption(escape_md(columns.urea_units_sentence(table)))
    st.dataframe(table, hide_index=True, key="urea_units_read")


def _rule_controls() -> None:
    """The study's rule Ueq >= Upos: a tolerance, and dropping or keeping the rows it flags."""
    kind, value, keep = st.columns(3)
    kind.radio("Ueq < Upos tolerance in", list(TOLERANCE_KINDS), key="ueq_tolerance_kind",
               format_func=TOLERANCE_KINDS.get,
               help="A row breaks the study's rule when Ueq is below Upos by more than this. "
                    "From the assay's CV the tolerance is its reference change value, "
                    "1.96 × √2 × CV: two measurements of one sample differ by less than that "
                    "95% of the time.")
    value.number_input("Tolerance (%)", min_value=0.0, max_value=50.0, step=0.5,
                       key="ueq_tolerance", help="0 is the study's rule: Ueq ≥ Upos.")
    keep.toggle("Keep and flag such rows", key="ueq_keep",
                help="Off (the study's choice): rows with Ueq below Upos are dropped. On: they "
                     "are kept for training and listed as flagged.")


# ----------------------------------------------------------------------------- what was read

def _report_section(ds: data.Dataset, ids: pd.DataFrame) -> None:
    st.header("What was read")
    if state.is_demo(ds):
        st.info("This is the demo cohort: synthetic sessions simulated with a two-pool urea "
                "kinetic model, not real patients. Upload your own file above to analyse it.")
    st.text(f"{ds.name}\n{ds.n_read} rows read · {ds.n_usable} usable · {ds.n_dropped} dropped")
    _rows_and_groups(ds, ids)
    hint = columns.units_hint(ds)
    if hint:
        st.warning(hint)
    for note in ds.notes:
        st.info(escape_md(note))
    leaks = _leaks(ds.fingerprint(), ds.frame, data.STUDY_TARGET, tuple(columns.leak_candidates(ds)))
    report = columns.report_text(ds, leaks)
    with st.expander("Validation report (plain text)"):
        st.code(report, language=None)
        st.download_button("Report (TXT)", report, f"{safe_filename(ds.name)}-validation.txt",
                           "text/plain", key="report-txt", on_click="ignore",
                           icon=":material/download:",
                           help="The report above as a text file, for your records")
    if len(ds.flagged):
        st.warning(f"{len(ds.flagged)} rows kept though Ueq is below Upos; they are listed here.")
        widgets.table(ds.flagged, "flagged-rows", height=200)
    if ds.dropped.empty:
        st.success("No row was dropped: every row has all six study values within plausible "
                   "ranges.")
        return
    st.subheader("Dropped rows and why")
    st.caption("Rows are numbered as a spreadsheet shows them (the header is row 1). A row with "
               "two problems is listed twice and counted under both reasons. Values are as "
               f"written in the file; ranges are checked on urea in mg/dL{_urea_range()}.")
    st.markdown(data.commonest_drop(ds))
    widgets.table(data.dropped_summary(ds), "dropped-by-reason")
    widgets.table(ds.dropped, "dropped-rows", height=300)


def _rows_and_groups(ds: data.Dataset, ids: pd.DataFrame) -> None:
    """Too few rows to cross-validate, and sessions that share a patient or unit while the
    protocol treats them as independent."""
    verdict, messages = groups.row_checks(ds)
    for message in messages:
        (st.error if verdict == "error" else st.warning)(escape_md(message))
    if state.group_by() in ids["column"].tolist():
        st.info(f"Grouped validation keeps the sessions of each **{escape_md(state.group_by())}** "
                "together on the Train and Grid pages, so a network is tested on patients (or "
                "units) it did not train on.", icon=":material/group:")
        return
    if state.group_by() is not None:
        return
    for row in ids.itertuples():
        st.warning(
            f"Column **{escape_md(row.column)}** looks like a patient or unit identifier "
            f"({row.groups} values, up to {row.largest_group} sessions each). Sessions of one "
            "patient or unit resemble each other: tested on sessions of patients it trained on, "
            "a network looks better than it is. On the Train page choose grouped k-fold or "
            f"leave one group out, grouped by {escape_md(row.column)}.", icon=":material/group:")


@st.cache_data(max_entries=16, show_spinner=False)
def _leaks(fingerprint: str, _frame, target: str, candidates: tuple[str, ...]):
    """Inputs computed from the target, once per data content (a second on a large file)."""
    return columns.target_leaks(_frame, target, candidates)


def _leak_warning(ds: data.Dataset, target: str, candidates: list[str]) -> None:
    """Warn about inputs that were probably computed from the target (target leakage)."""
    leaks = _leaks(ds.fingerprint(), ds.frame, target, tuple(candidates))
    if not leaks:
        return
    names = ", ".join(f"**{escape_md(leak.column)}**" for leak in leaks)
    details = "".join(f"\n- {escape_md(leak.text(target))}" for leak in leaks)
    st.warning(f"Probably computed from the target {escape_md(target)}: {names}. A network "
               "given such a column reads the answer instead of learning it; leave it out of "
               f"the inputs unless it was measured independently.{details}",
               icon=":material/warning:")


def _urea_range() -> str:
    """The plausible urea range in the shown unit, when that is not mg/dL: ' (5-400 mg/dL is
    0.833-66.6 mmol/L)'."""
    display = state.display_units()
    factor = display.factor("Upre")
    if factor == 1.0:
        return ""
    low, high = UREA_RANGE
    return (f" ({low:g}–{high:g} mg/dL is {low / factor:.3g}–{high / factor:.3g} "
            f"{display.unit('Upre')})")


@st.cache_data(max_entries=8, show_spinner="Summarising…")
def _overview(fingerprint: str, _frame, shown: tuple[str, ...], urea: str):
    """Summary table and histograms in the shown urea unit (part of the key), once per data
    content and unit (a million rows take a second)."""
    display = units.DisplayUnits(urea)
    return (columns.summary_table(_frame, shown, display),
            data_charts.distributions_chart(_frame, shown, display=display))


@st.cache_data(max_entries=16, show_spinner=False)
def _id_columns(fingerprint: str, _ds: data.Dataset):
    """Likely patient or unit identifiers, once per data content (each column's distinct
    values are counted)."""
    return groups.likely_id_columns(_ds)


def _overview_section(ds: data.Dataset, ids: pd.DataFrame) -> None:
    st.header("Distributions")
    labels = set(ids["column"])  # identifier and centre columns: not measurements, not drawn
    shown = (*data.STUDY_COLUMNS, *(c for c in ds.optional_inputs if c not in labels))
    display = state.display_units()
    summary, chart = _overview(ds.fingerprint(), ds.frame, shown, display.urea)
    widgets.figure(chart, "distributions", caption="Usable rows only; urea in "
                   f"{display.unit('Upre')}, weight in kg, ultrafiltration in litres.")
    widgets.table(summary, "summary", column_config={
        c: st.column_config.NumberColumn(format="%.4g")
        for c in ("mean", "sd", "min", "q1", "median", "q3", "max")})


# ---------------------------------------------------------------------------- column choice

def _reset_column_choice() -> None:
    """After a new data set the column widgets start again from what the session stores."""
    st.session_state[FEATURES], st.session_state[TARGET] = state.features(), state.target()
    _reset_length()


def _reset_length() -> None:
    length = state.session_length()
    st.session_state.update(zip(LENGTH_KEYS, (length.column or ONE_LENGTH, length.minutes,
                                              length.access), strict=True))


def _pick_label(column: str) -> str:
    """'pre-dialysis urea Upre': a study column in words, others by name. Without the unit: the
    browser returns the label chosen, which a switch of the shown unit must not orphan (the
    widget's label says the units)."""
    return f"{DESCRIPTIONS[column]} {column}" if column in DESCRIPTIONS else column


def _columns_section(ds: data.Dataset) -> None:
    st.header("Inputs and target")
    candidates = [*data.STUDY_INPUTS, *ds.optional_inputs]
    targets = [data.STUDY_TARGET, *candidates]
    if FEATURES not in st.session_state:  # forgotten on another page: start from the session
        _reset_column_choice()
    st.session_state[FEATURES] = [c for c in st.session_state[FEATURES] if c in candidates]
    _leak_warning(ds, st.session_state.get(TARGET, state.target()), candidates)
    urea = state.display_units().unit("Upre")
    chosen = st.multiselect(
        f"Input columns (urea in {urea}, weight in kg, ultrafiltration in L)", candidates,
        key=FEATURES, format_func=_pick_label,
        help=f"What the network sees. The study used Upre, U120, Upos (urea, {urea}), PP "
             "(pre-dialysis weight, kg) and UF (ultrafiltration, L). Other numeric columns of "
             "your file without empty cells can be added.")
    target = st.selectbox(
        f"Target (urea in {urea})", targets, key=TARGET, format_func=_pick_label,
        help=f"What the network predicts. The study predicts equilibrated urea Ueq ({urea}), "
             "measured 30-60 minutes after dialysis, when urea has rebounded.")
    if (chosen, target) == (state.features(), state.target()):
        return
    try:
        state.set_columns(chosen, target)
    except DataError as err:
        st.error(f"{escape_md(str(err))}. Still using {escape_md(', '.join(state.features()))} "
                 f"→ {escape_md(state.target())}.")


def _length_section(ds: data.Dataset) -> None:
    """Where the formulas take each session's length from, and the access the rate equation
    needs; kept in the session for Baselines, Agreement and Predict."""
    st.subheader("Session length and access")
    found = duration.duration_columns(
        [c for c in ds.extra_columns if pd.api.types.is_float_dtype(ds.frame[c])])
    options = [ONE_LENGTH, *found]
    if st.session_state.get(LENGTH_KEYS[0]) not in options:  # first visit, or a new data set
        _reset_length()
    column_col, minutes_col, access_col = st.columns(3)
    choice = column_col.selectbox(
        "Session length from", options, key=LENGTH_KEYS[0],
        help="A column of your file with each session's length (hours or minutes, told by its "
             "name or values), or one length for every session. The formulas (Daugirdas, rate "
             "equation, Tattersall) and every eKt/V use it.")
    minutes = minutes_col.number_input("Session length (minutes)", min_value=30.0,
                                       max_value=720.0, step=15.0, key=LENGTH_KEYS[1],
                                       disabled=choice != ONE_LENGTH,
                                       help="Used when no column gives it; the study's 240.")
    access = access_col.selectbox("Vascular access", ACCESS_TYPES, key=LENGTH_KEYS[2],
                                  format_func=ACCESS_LABELS.get,
                                  help="The rate equation's coefficients depend on it "
                                       "(0.6 and 0.03 arteriovenous, 0.47 and 0.02 catheter).")
    length = duration.SessionLength(None if choice == ONE_LENGTH else choice, minutes, access)
    try:
        hours = duration.session_hours(ds, length)
    except DataError as err:
        st.error(escape_md(str(err)))
        return
    state.set_session_length(length)
    if length.column is not None:
        st.caption(f"{escape_md(choice)} read in "
                   f"{'minutes' if duration.in_minutes(choice, ds.frame[choice]) else 'hours'}: "
                   f"sessions of {hours.min():.2f}–{hours.max():.2f} h.")


# ------------------------------------------------------------------------------------- page

st.title("Your data")
_source_section()
if UPLOAD in st.session_state:
    _mapping_section(st.session_state[UPLOAD])
current = state.dataset()
_columns_section(current)
_length_section(current)
id_columns = _id_columns(current.fingerprint(), current)
_report_section(current, id_columns)
_overview_section(current, id_columns)
