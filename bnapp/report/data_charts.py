"""Altair figures of an uploaded data set: the distribution of each variable, binned here
with numpy so that the browser gets only the counts."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from bnapp.intake.units import LIBRARY_DISPLAY, DisplayUnits
from bnapp.report.style import OKABE_ITO, finish, message_chart, ordered, with_unit


def _histogram(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Freedman-Diaconis bin count, kept between 10 and 40 (numpy's "fd" would allocate one
    edge per bin first, which a single far outlier can make billions)."""
    q1, q3 = np.percentile(values, [25, 75])
    width = 2 * (q3 - q1) / len(values) ** (1 / 3)
    bins = int(np.clip(np.ptp(values) / width, 10, 40)) if width > 0 else 10
    return np.histogram(values, bins=bins)


def distributions_chart(frame: pd.DataFrame, columns: Sequence[str], *,
                        display: DisplayUnits = LIBRARY_DISPLAY) -> alt.TopLevelMixin:
    """One histogram per variable, binned here with numpy so the browser gets only the counts;
    the study's columns in `display`'s units (frame holds library units)."""
    missing = [str(c) for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"columns not in the data: {', '.join(missing)}")
    parts = []
    for col in columns:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64)
        values = values[np.isfinite(values)] / display.factor(str(col))
        if len(values) == 0:
            continue
        counts, edges = _histogram(values)
        parts.append(pd.DataFrame({"variable": with_unit(str(col), display), "start": edges[:-1],
                                   "end": edges[1:], "count": counts}))
    if not parts:
        return message_chart("Distributions", "No numeric values to show in the chosen columns.")
    data = pd.concat(parts, ignore_index=True)
    order = ordered(data["variable"])
    bars = alt.Chart(data).mark_rect(color=OKABE_ITO[3], stroke="white", strokeWidth=0.5).encode(
        x=alt.X("start:Q", title="value", scale=alt.Scale(zero=False, nice=False)),
        x2=alt.X2("end:Q"),
        y=alt.Y("count:Q", title="sessions (rows)"),
        tooltip=[alt.Tooltip("variable:N"), alt.Tooltip("start:Q", format=".4g", title="from"),
                 alt.Tooltip("end:Q", format=".4g", title="to"), alt.Tooltip("count:Q")],
    ).properties(width=180, height=130)
    chart = bars.facet(
        facet=alt.Facet("variable:N", sort=order, title=None), columns=3,
    ).resolve_scale(x="independent", y="independent")
    n = len(frame)
    return finish(chart, "Distribution of each variable", f"{n:,} usable rows")
