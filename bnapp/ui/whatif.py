"""The what-if section of the Predict page: one session's values on sliders, its prediction with
the fold spread, Shapley waterfall and ICE curves, redrawn on every change."""

from __future__ import annotations

import numpy as np
import streamlit as st

from bnapp.analyses import explain
from bnapp.intake.units import LIBRARY_UNITS
from bnapp.report import importance_charts
from bnapp.ui import state, widgets


def _slider(name: str, column: np.ndarray, key: str) -> float:
    low, high = float(column.min()), float(column.max())
    pad = 0.1 * (high - low) or 1.0
    step = float(10 ** np.floor(np.log10(pad / 10)))  # about a hundredth of the range
    unit = LIBRARY_UNITS.get(name)
    return st.slider(widgets.escape_md(f"{name} ({unit})" if unit else name),
                     min_value=round(low - pad, 6),
                     max_value=round(high + pad, 6), value=float(np.median(column)), step=step,
                     key=key, help="Starts at the median of the training data; the range is the "
                                   "data's, widened by a tenth.")


@st.fragment
def what_if_section(entry: state.RunEntry) -> None:
    """Only this section reruns when a slider moves (an update costs tens of milliseconds)."""
    run = entry.run
    st.header("What if? One session, explained")
    st.caption("Move an input and see how the prediction follows, why (each input's Shapley "
               "value, from the mean prediction to this one) and how it would move along each "
               "input (ICE). Values in the training data's units.")
    columns = st.columns(3)
    values = []
    for i, name in enumerate(run.features):
        with columns[i % 3]:
            values.append(_slider(name, run.X[:, i], f"whatif-{entry.key[:8]}-{i}"))
    view = explain.what_if(run, np.array(values))
    spread = (f"across {len(view.predictions)} folds: SD {view.predictions.std(ddof=1):.2f}, "
              f"range {view.predictions.min():.1f}–{view.predictions.max():.1f}"
              if len(view.predictions) > 1 else "one model")
    st.metric(f"predicted {widgets.escape_md(run.target)}", f"{view.prediction:.2f}",
              help="Mean of the fold models")
    st.caption(spread)
    widgets.figure(importance_charts.shapley_waterfall(view.shapley, view.base_value,
                                                       target=run.target), "whatif_shapley")
    widgets.figure(importance_charts.session_ice_chart(view.ice, view.shapley, target=run.target),
                   "whatif_ice")
