"""Grid search: the study's 480 architectures scored by cross-validated error on the user's data."""

from __future__ import annotations

import numpy as np
import streamlit as st

from bnapp.engine import grid
from bnapp.engine.model import ACTIVATIONS, INPUT_MODES, OUTPUT_ACTIVATIONS, ArchSpec
from bnapp.engine.protocols import GROUP_KFOLD, Protocol, grouped
from bnapp.intake.data import DataError
from bnapp.intake.groups import group_columns
from bnapp.intake.units import DisplayUnits
from bnapp.report import network_charts
from bnapp.report.markup import unit_md
from bnapp.ui import state, widgets

MODE_NAMES = {"raw": "raw", "zscore": "z-scored"}
BN_NAMES = {True: "with BN", False: "without"}
SORT_KEYS = {
    "cv_mse_mean": "cross-validated MSE, lowest first",
    "cv_mse_sd": "SD of the MSE over folds, lowest first",
    "total_params": "number of parameters, fewest first",
}


def columns(target: str, display: DisplayUnits) -> dict[str, str]:
    """Table headers, the errors in the unit `display` shows the target the grid predicted in."""
    unit = display.unit(target)
    # the network's name stays in view when the table scrolls sideways, its errors next to it
    return {
        "label": st.column_config.TextColumn("network", pinned=True),
        "cv_rmse": f"√CV MSE ({unit})", "cv_mse_mean": f"CV MSE (({unit})²)",
        "cv_mse_sd": f"SD over folds (({unit})²)", "cv_mse_se": f"SE of the CV MSE (({unit})²)",
        "near_best": "within 1 SE of the best", "input_mode": "input",
        "activation": "hidden activation", "output_activation": "output activation",
        "bn": "BN layers", "n_layers": "hidden layers", "width": "nodes per layer",
        "total_params": "parameters",
        "instability": "instability (relative CV-MSE change from a 1e-12 start)",
        "diverged": "diverged",
    }


def show_table(frame, name: str, target: str, display: DisplayUnits) -> None:
    """The grid's columns of `frame`, its errors (computed in library units) in the shown unit:
    √MSE as a value of the target, the MSEs and their SD and SE as its square."""
    headers = columns(target, display)
    frame = display.show(display.show(frame, target, ["cv_rmse"]), target,
                         ["cv_mse_mean", "cv_mse_sd", "cv_mse_se"], power=2)
    widgets.table(frame[[c for c in headers if c in frame]], name, column_config=headers)


def protocol_controls() -> Protocol | None:
    folds, epochs, seed, group = st.columns(4)
    protocol = Protocol(
        kind="kfold",
        folds=folds.number_input(
            "Folds", 2, 20, 5, key="grid-folds",
            help="k of k-fold cross-validation: each network is trained k times, each time "
                 "tested on a different k-th of the sessions (the study used 5)"),
        epochs=epochs.number_input(
            "Epochs", 1, 2000, 200, key="grid-epochs",
            help="Passes over the training sessions per model (the study used 200); fewer run "
                 "faster but may rank under-trained networks"),
        seed=seed.number_input(
            "Seed", 0, 2**31 - 1, 0, key="grid-seed",
            help="Fixes the fold assignment and the starting weights, so a rerun gives the "
                 "same table"),
    )
    options = group_columns(state.dataset())
    column = group.selectbox(
        "Keep together (group by)", [None, *options], key="grid-group-by",
        index=1 + options.index(state.group_by()) if state.group_by() in options else 0,
        format_func=lambda c: "nothing (sessions independent)" if c is None else c,
        help="A column naming each session's patient or dialysis unit: grouped k-fold keeps "
             "its sessions in one fold, so no network is tested on a patient it trained on")
    if column is None:
        return protocol
    try:
        return grouped(protocol, GROUP_KFOLD, column, state.group_labels(column))
    except (ValueError, DataError) as err:
        st.error(widgets.escape_md(str(err)))
        return None


def subset_controls() -> tuple[list[ArchSpec] | None, bool]:
    """The part of the study's grid to run (None: all of it) and whether to run the stability
    check (each network trained a second time)."""
    with st.expander("Networks to train", icon=":material/tune:"):
        depth, width, act, out = st.columns(4)
        mode, bn, _ = st.columns([1, 1, 2])
        chosen = {
            "depths": depth.multiselect("Hidden layers", grid.GRID_DEPTHS, grid.GRID_DEPTHS,
                                        key="grid-depths"),
            "widths": width.multiselect("Nodes per layer", grid.GRID_WIDTHS, grid.GRID_WIDTHS,
                                        key="grid-widths"),
            "activations": act.multiselect("Hidden activation", ACTIVATIONS, ACTIVATIONS,
                                           key="grid-activations"),
            "output_activations": out.multiselect("Output activation", OUTPUT_ACTIVATIONS,
                                                  OUTPUT_ACTIVATIONS, key="grid-outputs"),
            "input_modes": mode.multiselect("Input", INPUT_MODES, INPUT_MODES,
                                            format_func=MODE_NAMES.get, key="grid-modes"),
            "bn": bn.multiselect("BN", [True, False], [True, False], format_func=BN_NAMES.get,
                                 key="grid-bn"),
        }
        stability = st.checkbox(
            "Check how chaotic each training is", True, key="grid-stability",
            help="Trains every network a second time from weights moved by 1e-12 (the "
                 "instability column); unticked, the grid takes about half the time")
    specs = grid.grid_specs(**chosen)
    st.caption(f"{len(specs)} of {len(grid.study_grid())} networks chosen"
               + (", each trained twice." if stability else "."))
    return (None if len(specs) == len(grid.study_grid()) else specs), stability


def grid_job():
    return next((j for j in state.jobs() if j.kind == "grid"), None)


def job_panel(job) -> None:
    """Progress of the running grid; once it ends, the whole page reruns to show the results."""
    if job.state in ("queued", "running"):
        widgets.job_status(job, key="grid-page")
    else:
        state.collect_finished()
        st.rerun(scope="app")


def submit(action, *args) -> None:
    try:
        action(*args)
    except DataError as err:
        st.error(widgets.escape_md(str(err)))
    else:
        st.rerun()


def filters(frame):
    modes, acts, bns, order = st.columns(4)
    keep_modes = modes.multiselect(
        "Input", INPUT_MODES, default=list(INPUT_MODES), format_func=MODE_NAMES.get,
        key="grid-filter-mode", help="Raw inputs go straight into the network (an input BN "
        "layer, if any, scales them); z-scored inputs are scaled with the training rows' mean/SD")
    keep_acts = acts.multiselect(
        "Hidden activation", ACTIVATIONS, default=list(ACTIVATIONS), key="grid-filter-activation",
        help="The nonlinearity of the hidden nodes (the study's best used sigmoid)")
    keep_bn = bns.multiselect(
        "BN", [True, False], default=[True, False], format_func=BN_NAMES.get,
        key="grid-filter-bn", help="Networks with BatchNormalization at the input and after "
        "every hidden layer, or with none")
    sort_by = order.selectbox("Sort by", list(SORT_KEYS), format_func=SORT_KEYS.get,
                              key="grid-sort", help="The table can also be sorted by clicking "
                              "a column header")
    chosen = frame[frame["input_mode"].isin(keep_modes) & frame["activation"].isin(keep_acts)
                   & frame["bn"].isin(keep_bn)]
    return chosen.sort_values(sort_by, kind="stable", na_position="last")


st.title("Grid search")
st.caption("The study's table 1 on your data: 1–4 hidden layers × 2–6 nodes × tanh/relu/sigmoid "
           "× linear/relu output × with/without BN × raw/z-scored inputs = 480 networks, each "
           "scored by its cross-validated mean squared error (MSE) in predicting the target.")
ds = state.dataset()
st.text(f"Data: {ds.name} · inputs {', '.join(state.features())} → {state.target()}")
protocol = protocol_controls()
specs, stability = subset_controls()
if st.button("Run the grid search", key="grid-run", type="primary", icon=":material/play_arrow:",
             disabled=protocol is None or specs == [],
             help="Trains the chosen networks in the background (several minutes for all 480 "
                  "with 5 folds and 200 epochs); you can use the other pages meanwhile"):
    submit(state.submit_grid, protocol, specs, stability)
job = grid_job()
if job is not None and job.state in ("queued", "running"):
    st.fragment(widgets.guarded(job_panel), run_every=widgets.POLL_SECONDS)(job)
elif job is not None and job.state in ("failed", "cancelled"):
    widgets.job_status(job, key="grid-page")

state.collect_finished()  # a grid that ended since the last poll (usually the sidebar's job)
results = state.grid_result()
if results is None:
    st.info("No grid results in this session yet: set the protocol and run the grid search.")
    widgets.end_page()

# in library units, as the ranking is computed; show_table converts what is shown
results = results.assign(cv_rmse=np.sqrt(results["cv_mse_mean"]),
                          near_best=grid.near_best(results))
predicted, display = state.grid_target(), state.display_units()
st.caption(f"These networks predicted {widgets.escape_md(predicted)}; errors are shown in "
           f"{unit_md(display, predicted)}, squared errors (MSE) in its square.")
st.subheader("Best network per input mode")
best = grid.best_per_mode(results)
show_table(best, "grid_best", predicted, display)
current = state.grid_is_current()
if not current:
    st.warning("This grid was run on another data set or other input and target columns than "
               "those chosen now, so its ranking may not hold for them: run the grid again "
               "before training its best networks.")
for _, row in best.iterrows():
    if st.button(f"Train {row['label']}", key=f"grid-train-{row['input_mode']}",
                 icon=":material/model_training:", disabled=not current,
                 help="Trains this network with the folds, epochs and seed set above; it opens "
                      "on every analysis page when done"):
        submit(state.submit_training, grid.grid_spec(row), protocol)

close = results[results["near_best"]]["input_mode"].value_counts()
st.caption(
    "Within one standard error of the best: "
    + ", ".join(f"{close.get(mode, 0)} networks on {MODE_NAMES[mode]} inputs" for mode in INPUT_MODES
                if mode in set(results["input_mode"]))
    + ". The folds cannot tell these apart from the best (CV MSE ≤ best + SE, where SE is the SD "
      "over folds ÷ √(k − 1)), so their order is noise: the one-standard-error rule picks the "
      "simplest of them, below.")
show_table(grid.simplest_near_best(results), "grid_simplest_within_1se", predicted, display)

if "instability" in results:
    chaotic = int((results["instability"] > grid.CHAOTIC_INSTABILITY).sum())
    st.caption(
        f"Instability: each network is trained a second time from initial weights moved by 1e-12, "
        f"and the column gives how far the two CV MSEs end apart (relative). {chaotic} of "
        f"{len(results)} networks end more than {grid.CHAOTIC_INSTABILITY:.0%} apart: their "
        "training is chaotic (rounding-sized differences grow), so their place in the ranking "
        "is partly chance.")

st.subheader("All networks")
shown = filters(results)
if shown.empty:
    st.info("No network matches the filters; widen them.")
    widgets.end_page()
show_table(shown, "grid_search", predicted, display)
widgets.figure(network_charts.grid_heatmap(shown, target=predicted, display=display),
               "grid_heatmap",
               caption="Cells show the filtered networks; the outlined cell is the best of each "
                       "input mode among them.")
