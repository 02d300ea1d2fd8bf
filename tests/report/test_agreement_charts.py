"""The agreement figures draw what the agreement tables say: the Bland–Altman plot's
proportional-bias line and the calibration panels, over every row even when the dots are a
sample."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp.analyses import agreement
from bnapp.report import agreement_charts
from bnapp.report.style import MAX_POINTS


def make_points(n: int, slope: float, seed: int, methods=("network", "tattersall")) -> pd.DataFrame:
    """agreement_points' schema: each method's predictions off the measured value by a
    proportional bias plus noise."""
    rng = np.random.default_rng(seed)
    measured = rng.uniform(20, 120, n)
    parts = []
    for i, method in enumerate(methods):
        predicted = measured * (1 + slope * (i + 1)) + rng.normal(0, 3, n)
        parts.append(pd.DataFrame({
            "method": method, "quantity": "Ueq", "row": np.arange(n), "measured": measured,
            "predicted": predicted, "mean": (measured + predicted) / 2,
            "difference": predicted - measured}))
    return pd.concat(parts, ignore_index=True)


def datasets(chart) -> list[pd.DataFrame]:
    return [pd.DataFrame(rows) for rows in chart.to_dict()["datasets"].values()]


@settings(max_examples=15, deadline=None)
@given(n=st.integers(5, 3 * MAX_POINTS), slope=st.floats(-0.3, 0.3), seed=st.integers(0, 2**16))
def test_bland_altman_trend_is_the_tables_regression_over_every_row(n, slope, seed):
    points = make_points(n, slope, seed, methods=("network",))
    table = agreement.agreement(None, points=points)
    chart = agreement_charts.bland_altman_chart(points, table, "network")
    trend = next(d for d in datasets(chart) if list(d.columns) == ["mean", "difference"])
    dots = next(d for d in datasets(chart) if "row" in d.columns)
    assert len(dots) == min(n, MAX_POINTS)
    # the independent reference: least squares of the difference on the method's value, all n
    # rows; the line's ends are at the lowest and highest prediction (predicted = mean + d / 2)
    want_slope, want_intercept = np.polyfit(points["predicted"], points["difference"], 1)
    predicted = trend["mean"] + trend["difference"] / 2
    assert np.allclose(predicted, [points["predicted"].min(), points["predicted"].max()])
    assert np.allclose(trend["difference"], want_intercept + want_slope * predicted,
                       rtol=1e-7, atol=1e-8)


def test_calibration_has_a_panel_per_method_headed_by_its_slope():
    points = make_points(200, 0.05, 1)
    table = agreement.calibration(None, points=points)
    chart = agreement_charts.calibration_chart(points, agreement.calibration_curves(points),
                                               table)
    data = datasets(chart)[0]
    assert set(data["kind"]) == {"dot", "lowess", "identity"}
    for method, fit in table.set_index("method").iterrows():
        headers = set(data.loc[data["method"] == method, "panel"])
        assert len(headers) == 1
        assert f"slope {fit['slope']:.3g} [{fit['slope_ci_low']:.3g}" in headers.pop()
    assert (data["kind"] == "dot").sum() == len(points)  # every row: no sampling at 200
    assert "Dots: a random" not in json.dumps(chart.to_dict(), ensure_ascii=False)


def test_calibration_samples_its_dots_within_the_budget_and_says_so():
    points = make_points(4 * MAX_POINTS, 0.05, 2, methods=("network", "tattersall", "ols"))
    chart = agreement_charts.calibration_chart(points, agreement.calibration_curves(points),
                                               agreement.calibration(None, points=points))
    data = datasets(chart)[0]
    per_method = data[data["kind"] == "dot"].groupby("method").size()
    assert per_method.sum() <= MAX_POINTS
    assert set(per_method) == {MAX_POINTS // 3}
    assert (f"a random {MAX_POINTS // 3:,} of each method's {4 * MAX_POINTS:,} test rows"
            in json.dumps(chart.to_dict(), ensure_ascii=False))
