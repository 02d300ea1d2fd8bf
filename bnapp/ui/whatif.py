"""The what-if section of the Predict page: one session's values on sliders, its prediction with
the fold spread, Shapley waterfall and ICE curves, redrawn on every change."""

from __future__ import annotations

import numpy as np
import streamlit as st

from bnapp.analyses import explain
from bnapp.intake.units import UREA_COLUMNS, DisplayUnits
from bnapp.report import importance_charts
from bnapp.ui import state, widgets


def _slider(name: str, column: np.ndarray, key: str, display: DisplayUnits) -> float:
    """An input's slider in its shown unit; its value in the library's (urea mg/dL)."""
    factor = display.factor(name)
    low, high = float(column.min()) / factor, float(column.max()) / factor
    pad = 0.1 * (high - low) or 1.0
    step = float(10 ** np.floor(np.log10(pad / 10)))  # about a hundredth of the range
    shown = st.slider(widgets.escape_md(display.label(name)), min_value=round(low - pad, 6),
                      max_value=round(high + pad, 6), value=float(np.median(column)) / factor,
                      step=step, key=key, help="Starts at the median of the training data; the "
                                               "range is the data's, widened by a tenth.")
    return shown * factor


def _key(entry: state.RunEntry, i: int, name: str, display: DisplayUnits) -> str:
    """A urea slider's key names its unit: another unit is another slider, back at the median
    (a value kept across the switch would be read in the wrong unit)."""
    unit = f"{display.urea}-" if name in UREA_COLUMNS else ""
    return f"whatif-{entry.key[:8]}-{unit}{i}"


@st.fragment
def what_if_section(entry: state.RunEntry, display: DisplayUnits) -> None:
    """Only this section reruns when a slider moves (an update costs tens of milliseconds).
    Sliders and the prediction in `display`'s units; the model gets library units."""
    run = entry.run
    st.header("What if? One session, explained")
    st.caption("Move an input and see how the prediction follows, why (each input's Shapley "
               "value, from the mean prediction to this one) and how it would move along each "
               f"input (ICE). Urea in {display.unit(UREA_COLUMNS[0])} on the sliders, as the "
               "sidebar's 'Show urea in' says.")
    columns = st.columns(3)
    values = []
    for i, name in enumerate(run.features):
        with columns[i % 3]:
            values.append(_slider(name, run.X[:, i], _key(entry, i, name, display), display))
    view = explain.what_if(run, np.array(values))
    factor = display.factor(run.target)
    folds = view.predictions / factor
    spread = (f"across {len(folds)} folds: SD {folds.std(ddof=1):.2f}, "
              f"range {folds.min():.1f}–{folds.max():.1f}" if len(folds) > 1 else "one model")
    st.metric(widgets.escape_md(f"predicted {display.label(run.target)}"),
              f"{view.prediction / factor:.2f}", help="Mean of the fold models")
    st.caption(spread)
    widgets.figure(importance_charts.shapley_waterfall(view.shapley, view.base_value,
                                                       target=run.target, display=display),
                   "whatif_shapley")
    widgets.figure(importance_charts.session_ice_chart(view.ice, view.shapley, target=run.target,
                                                       display=display), "whatif_ice")
