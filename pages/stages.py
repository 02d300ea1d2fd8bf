"""BN stages: the study's figure 2, what a BN layer does to the test-set values, stage by stage."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from bnapp.analyses import stages
from bnapp.engine.results import Layer
from bnapp.report import bn_charts, page_tables
from bnapp.ui import state, widgets

STAGE_TEXT = {
    "input": {
        "raw": "the test-set values as recorded, each variable in its own unit ({units}).",
        "zscore": "the same values standardized with the mean and SD of the fold's training rows "
                  "(what a z-score scaler does by hand).",
        "bn_normalized": "the values standardized by the BN layer itself, with the moving mean "
                         "and moving SD it learned during training, before γ and β; if the BN "
                         "learned the scaler, this panel looks like the z-scored one.",
        "bn_output": "what the next layer receives: the normalized value times γ plus β; an "
                     "input with large |γ| spreads wide, one with |γ| near 0 is muted.",
    },
    "hidden": {
        "raw": "each node's value after the hidden Dense layer, before its BN.",
        "zscore": "the same values standardized with their mean and SD on the fold's training rows.",
        "bn_normalized": "the node values standardized by the BN layer's moving mean and moving "
                         "SD, before γ and β.",
        "bn_output": "the normalized value times γ plus β, which goes into the activation.",
    },
}
FOLD_VIEWS = {"pooled": "All folds pooled", "per_fold": "One box per fold",
              "single": "One fold"}


@st.cache_data(max_entries=64, show_spinner="Summarizing the test-set values…")
def _quantiles(run_key: str, layer: Layer, _run) -> pd.DataFrame:
    """Box summaries of a layer's stages per run; the raw values themselves are not kept."""
    return stages.stage_summary(_run, layer)


entry = widgets.need_run()
spec = entry.run.spec
st.title("BN stages")
st.markdown("How the test-set values look at each step through a batch-normalization (BN) "
            "layer, the study's figure 2. Each box summarizes the test rows of one input "
            "(or hidden node).")
st.caption(f"Run: {widgets.escape_md(entry.label)}")

left, middle, right = st.columns([2, 2, 1])
layer = widgets.layer_picker(spec, key="stages-layer", container=left)
how = middle.radio(
    "Folds", list(FOLD_VIEWS), format_func=FOLD_VIEWS.get, key="stages-folds",
    help="Each fold is a network trained on its own training rows and tested on the rest. "
         "Pool all folds' test rows into one box, draw one box per fold side by side, or show "
         "a single fold.")
quantiles = _quantiles(entry.key, layer, entry.run)
folds = sorted(int(f) for f in quantiles["fold"].unique() if f != -1)
chosen = how
if how == "single":
    chosen = right.selectbox("Fold", folds, key="stages-fold",
                             help="The fold whose test rows are shown. Folds are numbered from 0; with repeated "
                                  "cross-validation each repeat's folds follow the previous repeat's.")

title = page_tables.layer_title(spec, layer)
if not page_tables.has_bn(spec, layer):
    st.warning(f"{title}: this layer has no batch normalization, so only the raw and "
               "z-scored stages exist; the BN stages are left out.")
display = state.display_units()
view, per_fold = page_tables.stage_view(quantiles, chosen)
stem = f"{layer.stem}_{how if how != 'single' else f'fold{chosen}'}"
widgets.figure(bn_charts.stage_boxplot(view, title, per_fold=per_fold, layer=layer.kind,
                                       display=display), f"stages_{stem}")
shown = [s for s in stages.STAGES if s in set(view["stage"].astype(str))]
units = widgets.escape_md(", ".join(display.label(u) for u in entry.run.unit_names(layer)))
st.markdown("\n".join(
    f"- **{bn_charts.STAGE_TITLES[s]}**: {STAGE_TEXT[layer.kind][s].format(units=units)}"
    for s in shown))
with st.expander("The numbers behind the boxes"):
    st.caption("One row per fold, unit and stage (fold −1: all folds pooled); n test values, "
               "quartiles, whisker ends and extremes."
               + (f" Raw values in each input's unit ({units}), the other stages "
                  "dimensionless." if layer.kind == "input" else ""))
    widgets.table(page_tables.shown_stages(view, display), f"stage_quantiles_{stem}")
