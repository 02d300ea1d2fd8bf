"""Sensitivity: the study's figures 3-5, |γ| against the error when one unit is turned off."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from bnapp.analyses import association, layer_tables, sensitivity
from bnapp.analyses.association import ASSOCIATION_METRICS
from bnapp.analyses.settings import SETTINGS
from bnapp.engine.protocols import Protocol
from bnapp.engine.results import Layer
from bnapp.intake.units import STUDY_TARGET
from bnapp.jobs import cache, page_analyses
from bnapp.report import bn_charts, page_tables, style
from bnapp.report.markup import unit_md
from bnapp.ui import state, widgets

MODE_WORDS = {"raw": "raw inputs", "zscore": "z-scored inputs"}


def ablation(entry: state.RunEntry, layer: Layer, mode: str) -> pd.DataFrame:
    """One ablation mode at a time: permutation costs n_permutations times the others, so it
    runs only when asked for (then memoized like every mode)."""
    return widgets.compute_call(entry, page_analyses.ablation(layer, mode))


@st.cache_data(max_entries=128, show_spinner="Fitting lines…")
def _lines(run_key: str, layer: Layer, mode: str, metric: str,
           _sens: pd.DataFrame) -> pd.DataFrame:
    # fitted in library units, whatever the unit shown: the charts divide the lines as they
    # divide the points (bn_charts), so the shown unit is not part of this cache's key
    lines = association.fit_lines(_sens, metric)
    # node k of one fold and node k of another start from other weights: unrelated units, so no
    # line per node across folds (the pooled points keep their colours)
    return lines.iloc[0:0] if layer.kind == "hidden" else lines


def run_tables(entry: state.RunEntry, layer: Layer, mode: str,
               metric: str) -> dict[str, pd.DataFrame]:
    """One run's points, fitted lines, association and verdict, each computed (and cached)
    once; the association and the verdict with intervals over cohorts like this one."""
    sens = ablation(entry, layer, mode)
    report = widgets.compute_soon(entry, page_analyses.ablation_report(
        layer, mode, metric, state.run_groups(entry)))
    return {"sensitivity": sens, "fit_lines": _lines(entry.key, layer, mode, metric, sens),
            **report}


def zero_mean_note(entry: state.RunEntry, layer: Layer, mode: str) -> None:
    """Say so when turning the layer's units off by 0 and by their mean gives the same errors."""
    if mode not in ("zero", "mean"):
        return
    both = pd.concat([ablation(entry, layer, m) for m in ("zero", "mean")])
    per_fold, _ = widgets.compute_call(entry, page_analyses.bn_parameters(layer))
    note = page_tables.zero_mean_note(both, per_fold, entry.run.spec, layer)
    if note:
        st.info(note)


def association_block(entry: state.RunEntry, layer: Layer, mode: str,
                      tables: dict[str, pd.DataFrame], stem: str) -> None:
    """One run's answer (the verdict every page gives for this definition), its correlation
    table, and the errors behind the figure."""
    answer = tables["verdict"]
    if len(answer):
        st.markdown(f"**The answer:** {widgets.escape_md(answer['sentence'].iloc[0])}")
        if answer["sign_note"].iloc[0]:
            st.info(answer["sign_note"].iloc[0])
        st.caption("The answer reads Spearman ρ of |γ| against the error inside each fold (does "
                   "one network's BN rank its units as their error does?), averaged over "
                   "folds; the Importance page gives the same answer for the same ablation and "
                   "ΔMSE, and says why definitions of importance can disagree.")
    assoc = tables["association"]
    st.markdown("**How strongly |γ| and the error go together**")
    st.caption("Pearson and Spearman over all points (between units as much as within one); "
               "Kendall τ compares the |γ| ranking with the error ranking inside each fold, "
               f"averaged over folds. 95% intervals describe {assoc['interval'].iloc[0]}.")
    widgets.table(page_tables.association_table(assoc, mode), f"association_{stem}")
    st.caption(page_tables.association_caveats(metric_of(assoc), mode, layer,
                                               entry.run.spec.input_mode, state.display_units()))
    if layer.kind == "hidden":
        st.caption("Hidden nodes: node k of one fold and node k of another start from different "
                   "weights, so they are unrelated units; no line is fitted per node across "
                   "folds, and the answer compares the nodes within each fold.")
    zero_mean_note(entry, layer, mode)
    with st.expander("Per fold and unit: the errors behind the figure"):
        errors_table(tables["sensitivity"], entry.run.target, stem)


def errors_table(sens: pd.DataFrame, target: str, stem: str) -> None:
    """The ablation table in the shown unit of the target (squared errors squared), its error
    columns titled with it; γ, R² and percentages as they are."""
    display = state.display_units()
    unit = unit_md(display, target)
    st.caption(f"Errors of {widgets.escape_md(target)} in {unit}, squared errors (MSE, ΔMSE) in "
               f"({unit})²; γ is dimensionless.")
    shown = style.show_metrics(sens, target, display)
    widgets.table(shown, f"sensitivity_{stem}", column_config={
        c: style.metric_label(c, target, display) for c in style.METRIC_WORDS if c in shown})


def metric_of(assoc: pd.DataFrame) -> str:
    return str(assoc["metric"].iloc[0]) if len(assoc) else ""


def no_bn_note(spec, layer: Layer) -> bool:
    """Say so and return True where the layer has no BN, hence no γ."""
    if page_tables.has_bn(spec, layer):
        return False
    st.info(f"{page_tables.layer_title(spec, layer)}: this network has no batch normalization "
            "here, so there is no γ to plot against the error. (The study's z-score "
            "comparison, its figure 4, kept the input BN and fed it z-scored inputs.)")
    return True


def run_panel(entry: state.RunEntry, layer: Layer, mode: str, metric: str) -> None:
    """One run's scatter, correlation table and reading of it."""
    if no_bn_note(entry.run.spec, layer):
        return
    stem = f"{layer.stem}_{mode}_{metric}_{entry.run.spec.input_mode}"
    tables = run_tables(entry, layer, mode, metric)
    widgets.figure(bn_charts.gamma_scatter(tables["sensitivity"], tables["fit_lines"], metric,
                                           mode, target=entry.run.target,
                                           display=state.display_units()), f"gamma_vs_{stem}")
    association_block(entry, layer, mode, tables, stem)


def comparison_panel(pair: dict[str, state.RunEntry], layer: Layer, mode: str,
                     metric: str) -> None:
    """The same network on raw and on z-scored inputs: one figure on shared axes, then each
    run's statistics side by side."""
    if no_bn_note(pair["raw"].run.spec, layer):
        return
    per_mode = {input_mode: run_tables(shown, layer, mode, metric)
                 for input_mode, shown in pair.items()}
    both = layer_tables.side_by_side(per_mode, ("sensitivity", "fit_lines"))
    stem = f"{layer.stem}_{mode}_{metric}"
    widgets.figure(bn_charts.input_mode_scatter(both["sensitivity"], both["fit_lines"], metric, mode,
                                                target=pair["raw"].run.target,
                                                display=state.display_units()),
                   f"gamma_vs_{stem}_by_input_mode")
    for column, (input_mode, shown) in zip(st.columns(2), pair.items(), strict=True):
        with column:
            st.subheader(MODE_WORDS[input_mode].capitalize())
            st.caption(widgets.escape_md(shown.label))
            association_block(shown, layer, mode, per_mode[input_mode], f"{stem}_{input_mode}")


def offer_other_mode(entry: state.RunEntry) -> None:
    """A button that trains this run's network on the other input mode, same data and protocol."""
    other = page_tables.other_mode_spec(entry.run.spec)
    words = MODE_WORDS[other.input_mode]
    st.info(f"To see raw and z-scored inputs side by side (the study's figures 3 and 4), train "
            f"this same network on {words} with this run's protocol; it appears here beside "
            "this one when the job is done (progress in the sidebar).")
    if not st.button(f"Train the same network on {words}", key="sens-train-other",
                     help="Submits a background training job on the data set and columns of "
                          "this run; you can keep working meanwhile."):
        return
    ds = state.dataset()
    same = cache.run_key(ds.fingerprint(), entry.run.spec, entry.run.protocol, state.features(),
                         state.target()) == entry.key
    if not same:
        st.warning("The data set or the columns chosen on the Data page are not the ones this "
                   "run was trained on. Choose them there again, or train the other network on "
                   "the Train page.")
        return
    state.submit_training(other, Protocol.from_dict(entry.run.protocol))
    st.rerun()


entry = widgets.need_run()
spec = entry.run.spec
st.title("Sensitivity: does |γ| tell which input matters?")
st.markdown(
    "Each point is one input (or hidden node) in one fold: its BN scale |γ| against the test "
    "error of that fold's network when that one unit is turned off. The study found that inputs "
    "with larger |γ| cause larger errors with raw inputs (figure 3), and no such link with "
    "z-scored inputs (figure 4) or for the BN after the hidden layer (figure 5). Solid lines: "
    "linear fit per unit across folds; dashed: smoothed trend.")
st.caption(f"Run: {widgets.escape_md(entry.label)}")

display = state.display_units()
urea, unit = display.unit(STUDY_TARGET), unit_md(display, entry.run.target)
c_layer, c_mode, c_metric = st.columns(3)
layer = widgets.layer_picker(
    spec, key="sens-layer", container=c_layer,
    help="Input BN: one patient variable turned off at a time (figures 3-4). Hidden BN: one "
         "hidden node turned off at a time (figure 5).")
mode = c_mode.radio(
    "How a unit is turned off", sensitivity.ABLATIONS,
    index=sensitivity.ABLATIONS.index(page_analyses.FIRST_ABLATION),
    format_func=lambda m: bn_charts.MODE_LABELS[(layer.kind, m)], key="sens-mode",
    help=f"Set to 0: the study's choice, but a raw urea of 0 {urea} is far outside the data. "
         "Held at its training mean: the unit carries no information. Permuted: its values "
         f"shuffled among the test rows ({SETTINGS.n_permutations} shuffles pooled).")
# the options in words, their unit in the label: the browser returns the option's label, which a
# switch of the shown unit must not orphan
metric = c_metric.selectbox(
    f"Error measure, in {unit} (ΔMSE in ({unit})²)", ASSOCIATION_METRICS, key="sens-metric",
    index=ASSOCIATION_METRICS.index(page_analyses.FIRST_METRIC),
    format_func=lambda m: style.METRIC_WORDS[m][0],
    help=f"Bias: |mean of prediction − truth| in {unit}, what the study called 'MSPE' (errors "
         "of opposite sign cancel). ΔMSE: how much the mean squared error grows over the intact "
         f"network, in ({unit})². RMSE: root mean squared error with the unit off, in {unit}.")

others = {key: e.run for key, e in state.runs().items() if key != entry.key}
match = page_tables.comparison_key(entry.run, others)
pair = problem = None
if match is not None:
    by_mode = {e.run.spec.input_mode: e for e in (entry, state.runs()[match])}
    pair = {input_mode: by_mode[input_mode] for input_mode in MODE_WORDS}  # raw first
    problem = layer_tables.comparison_problem(pair["raw"].run, pair["zscore"].run)
if pair is not None and problem is None:
    comparison_panel(pair, layer, mode, metric)
else:
    run_panel(entry, layer, mode, metric)
    if problem is not None:
        other = MODE_WORDS[page_tables.other_mode(spec)]
        st.info(f"The run on {other} in this session is not shown "
                f"beside this one: {problem}.")
    if page_tables.has_bn(spec, layer):
        offer_other_mode(entry)

if spec.hidden_bn:
    with st.expander("The study's published hidden-node ablation (cumulative), to reproduce "
                     "figure 5"):
        hidden = layer if layer.kind == "hidden" else Layer.hidden(0)
        st.markdown(
            "The published code switched hidden nodes off cumulatively: the point of node k "
            "has nodes 1 to k all zeroed, so each point mixes the effect of every earlier node. "
            "It is shown only to reproduce the published figure; the main figure above turns "
            "one node off at a time, which is what the study meant to measure.")
        cumulative = widgets.compute_call(entry, page_analyses.cumulative_ablation(hidden))
        lines = association.fit_lines(cumulative, metric)  # the published figure's own lines
        widgets.figure(bn_charts.gamma_scatter(cumulative, lines, metric, "zero_cumulative",
                                               target=entry.run.target, display=display),
                       f"gamma_vs_{metric}_{hidden.stem}_cumulative")
