"""Train: pick an architecture and a protocol, train in the background, reopen cached runs and
look at the training curves of the run shown on every page."""

from __future__ import annotations

import functools
from collections.abc import Callable

import altair as alt
import pandas as pd
import streamlit as st

from bnapp.engine.model import ACTIVATIONS, INPUT_MODES, OUTPUT_ACTIVATIONS, ArchSpec
from bnapp.engine.protocols import (
    GROUP_KFOLD,
    GROUPED_KINDS,
    LEAVE_ONE_GROUP_OUT,
    PROTOCOL_KINDS,
    Protocol,
    grouped,
)
from bnapp.intake.data import DataError
from bnapp.intake.groups import group_columns
from bnapp.intake.units import DisplayUnits
from bnapp.jobs import cache, page_analyses
from bnapp.report import network_charts, style
from bnapp.ui import result, state, widgets
from bnapp.ui.widgets import escape_md

MAX_LAYERS = 4
KEPT = "train_controls"  # last value of every control, kept while the user is on other pages
INPUT_MODE_LABELS = {"raw": "raw values (in their own units)",
                     "zscore": "z-scores (training rows' mean and SD)"}
KIND_LABELS = {"kfold": "k-fold cross-validation", "repeated": "repeated k-fold",
               "study": "the study's random 80/20 splits",
               "group-kfold": "grouped k-fold (patients or centres kept together)",
               "leave-one-group-out": "leave one group (centre) out"}
STUDY_VAL_PERCENT = round(100 * Protocol.study().val_fraction)
BN_UPDATES = {"keras3": "Keras 3 (default)", "keras2": "Keras 2 (float32 decay)"}
DEFAULT_PATIENCE = 20


def _control(widget, label: str, key: str, default, **kwargs):
    """A widget whose value survives visits to other pages (Streamlit forgets widgets that a
    run did not draw)."""
    kept = st.session_state.setdefault(KEPT, {})
    if key not in st.session_state:
        st.session_state[key] = kept.get(key, default)
    kept[key] = widget(label, key=key, **kwargs)
    return kept[key]


def _apply_preset(spec: ArchSpec) -> None:
    """Set the architecture controls to one of the study's networks."""
    values = {"arch_layers": len(spec.hidden), "arch_same_width": len(set(spec.hidden)) == 1,
              "arch_width": spec.hidden[0], "arch_activation": spec.activation,
              "arch_output": spec.output_activation, "arch_input_bn": spec.input_bn,
              "arch_hidden_bn": spec.hidden_bn, "arch_input_mode": spec.input_mode}
    values.update({f"arch_width_{i}": h for i, h in enumerate(spec.hidden, 1)})
    st.session_state.update(values)
    st.session_state.setdefault(KEPT, {}).update(values)


# ------------------------------------------------------------------------------- architecture

def _widths(layers: int) -> tuple[int, ...]:
    width_help = "Units (nodes) in the hidden layer; the study used 6."
    if _control(st.toggle, "Same width for every hidden layer", "arch_same_width", True,
                help="Off: choose each hidden layer's width separately."):
        width = _control(st.number_input, "Width of each hidden layer", "arch_width", 6,
                         min_value=1, max_value=256, step=1, help=width_help)
        return (int(width),) * layers
    cells = st.columns(layers)
    return tuple(int(_control(cells[i].number_input, f"Layer {i + 1} width", f"arch_width_{i + 1}",
                              6, min_value=1, max_value=256, step=1, help=width_help))
                 for i in range(layers))


@st.cache_resource(max_entries=64, show_spinner=False)
def _architecture_chart(spec: ArchSpec, n_inputs: int, features: tuple[str, ...],
                        target: str, display: DisplayUnits) -> alt.TopLevelMixin:
    """The drawing of the network, built once per architecture and unit shown (a sixth of this
    page's script run, on every click of it, before); shared, as figure() only reads a chart."""
    return network_charts.architecture_chart(spec, n_inputs, features, target=target,
                                             display=display)


def _architecture(n_inputs: int) -> ArchSpec | None:
    st.header("Network")
    e2e, zscore, _ = st.columns([1, 1, 2])
    e2e.button("Study's BN network", key="preset_e2e", on_click=_apply_preset,
               args=(ArchSpec.study_e2e(),),
               help="DLNNe2e: a BN layer on the raw inputs, one hidden layer of 6 sigmoid units "
                    "with BN, a linear output (87 parameters for 5 inputs).")
    zscore.button("Study's z-score network", key="preset_zscore", on_click=_apply_preset,
                  args=(ArchSpec.study_zscore(),),
                  help="DLNNnorm: z-scored inputs, two hidden layers of 6 sigmoid units, no BN "
                       "(85 parameters for 5 inputs).")
    shape, options = st.columns(2)
    with shape:
        layers = int(_control(st.number_input, "Hidden layers", "arch_layers", 1, min_value=1,
                              max_value=MAX_LAYERS, step=1,
                              help="Dense layers between the input and the output; the study "
                                   "used 1 (BN network) or 2 (z-score network)."))
        hidden = _widths(layers)
        activation = _control(st.selectbox, "Hidden activation", "arch_activation", "sigmoid",
                              options=ACTIVATIONS,
                              help="The non-linearity of the hidden units; the study used "
                                   "sigmoid.")
        output = _control(st.selectbox, "Output activation", "arch_output", "linear",
                          options=OUTPUT_ACTIVATIONS,
                          help="linear: the prediction (Ueq in the study) as computed; relu: never "
                               "below zero.")
    with options:
        input_bn = _control(st.toggle, "BN at the input", "arch_input_bn", True,
                            help="A BatchNormalization layer on the inputs: it learns a scale γ "
                                 "and a shift β per input, which this app analyses.")
        hidden_bn = _control(st.toggle, "BN after each hidden layer", "arch_hidden_bn", True,
                             help="BatchNormalization between each hidden Dense layer and its "
                                  "activation, as in the study's BN network.")
        mode = _control(st.radio, "Input values", "arch_input_mode", "raw", options=INPUT_MODES,
                        format_func=INPUT_MODE_LABELS.get,
                        help="raw: the values as measured; z-score: each input minus its mean, "
                             "divided by its SD, both from the fold's training rows.")
    try:
        spec = ArchSpec(hidden, activation, output, input_bn, hidden_bn, mode)
    except ValueError as err:
        st.error(escape_md(err))
        return None
    counts = spec.param_counts(n_inputs)
    moving = (f"{counts.trainable} trainable + {counts.non_trainable} BN moving statistics"
              if counts.non_trainable else "all trainable")
    st.markdown(f"**{counts.total} parameters** ({moving}) for {n_inputs} inputs")
    widgets.figure(_architecture_chart(spec, n_inputs, tuple(state.features()), state.target(),
                                       state.display_units()), "architecture")
    return spec


# ----------------------------------------------------------------------------------- protocol

def _preselect_grouping() -> None:
    """A new data set with a patient or unit identifier starts on grouped k-fold by it."""
    column = state.take_suggested_group()
    if column is not None:
        values = {"proto_kind": GROUP_KFOLD, "proto_group_by": column}
        st.session_state.update(values)
        st.session_state.setdefault(KEPT, {}).update(values)


def _protocol() -> Protocol | None:
    st.header("Protocol")
    _preselect_grouping()
    left, middle, right = st.columns(3)
    with left:
        kind = _control(st.radio, "Validation", "proto_kind", "kfold", options=PROTOCOL_KINDS,
                        format_func=KIND_LABELS.get,
                        help="k-fold: every row is tested once. Repeated: k-fold again with "
                             "new shuffles. The study's splits: random 80/20 train/test splits, "
                             "20% of each training set held out for a validation curve. "
                             "Grouped k-fold: all sessions of a patient (or unit) fall in the "
                             "same fold, so a network is never tested on a patient it trained "
                             "on. Leave one group out: one model per group, tested on that "
                             "group after training on the others (e.g. per dialysis unit).")
        folds = _control(st.number_input, "Folds (splits)", "proto_folds", 10, min_value=1,
                         max_value=100, step=1, disabled=kind == LEAVE_ONE_GROUP_OUT,
                         help="Number of models; each is tested on rows it did not see. The "
                              "study used 10. Leaving one group out makes one model per group.")
        column = _group_by(kind)
        repeats = 1
        if kind == "repeated":
            repeats = _control(st.number_input, "Repeats", "proto_repeats", 3, min_value=1,
                               max_value=50, step=1, help="How often k-fold is repeated.")
    with middle:
        epochs = _control(st.number_input, "Epochs", "proto_epochs", 200, min_value=1,
                          max_value=10000, step=10,
                          help="Passes over the training rows; the study used 200.")
        batch = _control(st.number_input, "Batch size", "proto_batch", 32, min_value=1,
                         max_value=4096, step=1,
                         help="Rows per gradient step; BN normalises each batch with its own "
                              "mean and variance. The study used 32.")
    with right:
        lr = _control(st.number_input, "Learning rate", "proto_lr", 0.01, min_value=0.0,
                      max_value=10.0, step=0.001, format="%.4g",
                      help="Step size of plain gradient descent (SGD); the study used 0.01. "
                           "Too large a rate makes training diverge.")
        seed = _control(st.number_input, "Seed", "proto_seed", 0, min_value=0,
                        max_value=2**31 - 1, step=1,
                        help="Fixes the splits, initial weights and batch order: the same seed "
                             "gives the same result.")
        bn_decay = _control(st.selectbox, "BN statistics updated as", "proto_bn_decay", "keras3",
                            options=list(BN_UPDATES), format_func=BN_UPDATES.get,
                            help="How a training step moves each BN layer's moving mean and "
                                 "variance: as Keras 3 does, or as Keras 2 (tf-keras), whose "
                                 "decay 1 − 0.99 is rounded to float32 (a 2e-8 difference per "
                                 "step). Both are real Keras; pick the one to match.")
    val_percent, patience = _validation(kind)
    try:
        protocol = Protocol(kind="kfold" if kind in GROUPED_KINDS else kind, folds=int(folds),
                            repeats=int(repeats), epochs=int(epochs), batch_size=int(batch),
                            lr=float(lr), seed=int(seed), val_fraction=val_percent / 100,
                            patience=patience, bn_decay=bn_decay)
        if kind not in GROUPED_KINDS:
            return protocol
        if column is None:
            return None
        return grouped(protocol, kind, column, state.group_labels(column))
    except (ValueError, DataError) as err:
        st.error(escape_md(err))
        return None


def _group_by(kind: str) -> str | None:
    """The grouping column of a grouped protocol (kept in the session, where the Data page's
    warning looks for it); None for other protocols or when no column can group rows."""
    if kind not in GROUPED_KINDS:
        state.set_group_by(None)
        return None
    options = group_columns(state.dataset())
    if not options:
        st.warning("No column of this data set can group rows: a grouping column holds a "
                   "patient ID or unit name (text or whole numbers) repeated on that group's "
                   "sessions, with no empty cells. Add one to your file, or choose another "
                   "protocol.")
        state.set_group_by(None)
        return None
    if st.session_state.get("proto_group_by") not in options:
        st.session_state.pop("proto_group_by", None)
        st.session_state.setdefault(KEPT, {}).pop("proto_group_by", None)
    column = _control(st.selectbox, "Keep together (group by)", "proto_group_by", options[0],
                      options=options,
                      help="The column naming each session's patient or dialysis unit: its "
                           "sessions are never split between training and test rows.")
    state.set_group_by(column)
    return column


def _validation(kind: str) -> tuple[int, int | None]:
    """Inner validation rows (percent of each training set) and early stopping's patience
    (None: off). The study's splits default to its 20%, the other protocols to none."""
    left, middle, _ = st.columns(3)
    with left:
        val_percent = _control(
            st.number_input, "Validation rows (% of training rows)",
            "proto_val_study" if kind == "study" else "proto_val",
            STUDY_VAL_PERCENT if kind == "study" else 0, min_value=0, max_value=50, step=5,
            help="Each model sets this share of its training rows aside: it does not learn from "
                 "them, but its error on them is measured after every epoch (the validation "
                 "curve), which shows when it starts to learn noise (over-fitting). 0: train on "
                 "all training rows. The study set 20% aside.")
    with middle:
        if val_percent == 0:  # nothing to stop on: show the switch off, not greyed-out on
            st.session_state["proto_early_stop"] = False
        stop = _control(st.toggle, "Stop early", "proto_early_stop", False,
                        disabled=val_percent == 0,
                        help="Stop training a model once its error on the validation rows has "
                             "not improved for a number of epochs, and keep the network from "
                             "its best epoch. Needs validation rows. Off in the study.")
        if not (stop and val_percent > 0):
            return val_percent, None
        patience = _control(st.number_input, "Patience (epochs)", "proto_patience",
                            DEFAULT_PATIENCE, min_value=1, max_value=10000, step=1,
                            help="How many epochs in a row without a lower validation error "
                                 "before a model stops.")
    return val_percent, int(patience)


# -------------------------------------------------------------------------------------- jobs

def _page_job():
    """The job this page submitted last in this session; after a reload (which forgets that),
    the session's newest training job, restored from the URL."""
    wanted = st.session_state.get("train_job")
    return next((job for job in state.jobs()
                 if job.id == wanted or (wanted is None and job.kind == "train")), None)


def _job_panel() -> None:
    job = _page_job()
    if job is None:
        return
    shown = state.active_run()  # its warnings are shown with its curves below
    widgets.job_status(job, key="train", warnings=shown is None or shown.key != job.key)
    if job.state == "done" and state.collect_finished():
        st.rerun(scope="app")  # the new run is open: redraw the curves and the sidebar


def _train_section(spec: ArchSpec | None, protocol: Protocol | None) -> None:
    """The data, the Train button and the job's panel."""
    ds = state.dataset()
    st.text(f"Data: {ds.name} · {ds.n_usable} rows · inputs {', '.join(state.features())} "
            f"→ target {state.target()}")
    if protocol is not None:
        most = " at most" if protocol.patience else ""
        st.caption(f"{protocol.n_models} models ×{most} {protocol.epochs} epochs.")
    if st.button("Train", key="train", type="primary", disabled=spec is None or protocol is None,
                 icon=":material/play_arrow:",
                 help="Train in the background; you can open other pages meanwhile. A run "
                      "trained before with the same data and settings opens from the cache."):
        try:
            job = state.submit_training(spec, protocol)
        except DataError as err:
            st.error(escape_md(str(err)))
        else:
            st.session_state["train_job"] = job.id
            # done within a second (a small data set): its run opens in this very script run,
            # shown below and in the sidebar (drawn after the page); else both follow the job
            if job.wait(widgets.QUICK_SECONDS):
                state.collect_finished()
    job = _page_job()
    if job is not None:
        busy = job.state in ("queued", "running")
        st.fragment(widgets.guarded(_job_panel),
                    run_every=widgets.POLL_SECONDS if busy else None)()


# ---------------------------------------------------------------------------------- run shown

def _choose_active() -> None:
    state.set_active(st.session_state["train_active"])


@st.cache_resource(max_entries=16, show_spinner=False)
def _curve_charts(run_key: str, _entry: state.RunEntry, per_fold: bool,
                  display: DisplayUnits) -> tuple[tuple[alt.TopLevelMixin, Callable], ...]:
    """A run's loss curves (MSE in the unit shown) and γ curves (γ as a median and band, or a
    line per fold), each (light for the screen, the detailed one's builder for the downloads),
    built once per run, choice and unit (this page runs again on every click of its
    controls); shared, as figure() only reads a chart."""
    loss, gamma = widgets.compute_call(_entry, page_analyses.training_curves())
    held_out = widgets.compute_call(_entry, page_analyses.held_out_errors())
    builders = (functools.partial(network_charts.loss_curves, loss, held_out,
                                  target=_entry.run.target, display=display),
                functools.partial(network_charts.gamma_trajectories, gamma, band=not per_fold))
    return tuple((build(max_points=style.SCREEN_LINE_POINTS),
                  functools.partial(build, max_points=style.MAX_POINTS)) for build in builders)


def _runs_section() -> None:
    st.header("Training curves")
    entry = state.active_run()
    if entry is None:
        st.info("No run yet: choose a network and a protocol above and press Train, or open a "
                "cached run below.")
        return
    opened = state.runs()
    st.session_state["train_active"] = entry.key
    st.selectbox("Run shown on every page", list(opened), key="train_active",
                 format_func=lambda key: opened[key].label, on_change=_choose_active,
                 help="The runs trained or opened in this browser tab; the analysis pages show "
                      "the one chosen here.")
    widgets.cache_warnings(entry.warnings)
    st.subheader("The result")
    result.show(entry)
    per_fold = st.toggle("γ of each fold", key="gamma_per_fold",
                         help="Draw γ as one line per fold and input instead of the median "
                              "over the folds with a band.")
    (loss, loss_detailed), (gamma, gamma_detailed) = _curve_charts(entry.key, entry, per_fold,
                                                                   state.display_units())
    widgets.figure(loss, "loss-curves", export=loss_detailed)
    widgets.figure(gamma, "input-gamma-curves", export=gamma_detailed,
                   caption="γ is the scale the input BN layer learns for each input: how much "
                           "that input's normalised value is stretched before the network uses "
                           "it.")


# ------------------------------------------------------------------------------- cached runs

def _cached_section() -> None:
    st.header("Cached runs")
    shown = state.active_run()
    unsaved = ("" if shown is None or shown.saved else
               " The run shown above could not be saved there: see the warning with its curves.")
    st.caption(f"Trained runs are saved in {escape_md(cache.cache_dir())}, readable by your user "
               "account only. They hold patient-derived data (each row's values and the "
               f"networks' predictions): delete them when you no longer need them.{unsaved}")
    listing = state.cached_runs()
    if listing.empty:
        st.caption("No cached runs yet.")
    else:
        shown = listing.assign(created=pd.to_datetime(listing["created"], errors="coerce"),
                               size_kb=listing["size_bytes"] / 1024)
        st.dataframe(shown[["label", "data_name", "created", "size_kb"]], hide_index=True,
                     column_config={"label": "run", "data_name": "data set",
                                    "size_kb": st.column_config.NumberColumn("size (kB)",
                                                                             format="%.0f")})
        labels = {row.key: f"{row.label} · {row.data_name} ({row.n_rows} rows) · {row.created}"
                  for row in listing.itertuples()}
        pick = st.selectbox("Cached run", list(labels), key="cached_pick",
                            format_func=labels.get,
                            help="A run trained earlier, on this computer, by any session.")
        open_, delete, _ = st.columns([1, 1, 4])
        if open_.button("Open", key="open_cached", help="Show this run on every page"):
            if state.open_cached(pick) is None:
                st.error("This cached run could not be read (deleted or damaged); train it "
                         "again.")
            else:
                st.rerun()
        if delete.button("Delete", key="delete_cached",
                         help="Remove this run from the disk; a tab that has it open keeps "
                              "it until closed."):
            _delete(cache.remove, pick)
    _clear_all(len(cache.entries()))


def _delete(remove, *args) -> None:
    """Run a cache deletion; a read-only or vanished directory becomes a message."""
    try:
        remove(*args)
    except OSError as err:
        st.error(f"Could not delete from {escape_md(cache.cache_dir())}: "
                 f"{escape_md(err.strerror or err)}. Check that the folder is writable.")
    else:
        st.rerun()


def _clear_all(n_entries: int) -> None:
    """Delete every cached run and grid search: one click, then a confirmation."""
    if st.button("Clear all cached results", key="clear_cache", disabled=n_entries == 0,
                 help="Delete every cached run and grid search from this computer."):
        st.session_state["confirm_clear"] = True
    if not st.session_state.get("confirm_clear"):
        return
    st.warning(f"Delete all {n_entries} cached results (runs with their analyses, and grid "
               "searches)? Runs open in this tab stay open until you close it.")
    yes, no, _ = st.columns([1, 1, 4])
    if yes.button("Yes, delete them", key="clear_cache_confirm", type="primary",
                  help="Delete every cached result from this computer; this cannot be undone."):
        st.session_state["confirm_clear"] = False
        _delete(cache.clear)
    if no.button("Keep them", key="clear_cache_cancel", help="Delete nothing."):
        st.session_state["confirm_clear"] = False
        st.rerun()


# ------------------------------------------------------------------------------------- page

st.title("Train")
chosen_spec = _architecture(len(state.features()))
chosen_protocol = _protocol()
_train_section(chosen_spec, chosen_protocol)
_runs_section()
_cached_section()
