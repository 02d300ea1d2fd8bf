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


def _encodings(spec) -> list[dict]:
    """Every layer's encoding of a (possibly nested) chart spec."""
    found = [spec["encoding"]] if "encoding" in spec else []
    for key in ("layer", "hconcat", "vconcat"):
        for part in spec.get(key, []):
            found += _encodings(part)
    return found


def _words(spec: dict) -> str:
    """The spec without its data: what a user reads (titles, axes, tooltips)."""
    return json.dumps({k: v for k, v in spec.items() if k != "datasets"}, ensure_ascii=False)


def test_bland_altman_names_each_dot_and_always_draws_the_largest_differences():
    n = 2 * MAX_POINTS
    points = agreement.identify(make_points(n, 0.05, 3), np.arange(n) + 2,
                                np.array([f"unit {i % 3}" for i in range(n)]))
    table = agreement.agreement(None, points=points)
    chart = agreement_charts.bland_altman_chart(points, table, "network", tolerance=4.0,
                                                group_name="centro")
    spec = chart.to_dict()
    tips = [t for e in _encodings(spec) for t in e.get("tooltip", [])]
    assert {"title": "row in the data file", "field": "data_row", "type": "quantitative",
            "format": "d"} in tips
    assert {"field": "group", "type": "nominal", "title": "centro"} in tips
    mine = points[points["method"] == "network"]
    top = mine.loc[mine["difference"].abs().nlargest(agreement.LARGEST).index, "data_row"]
    drawn = next(d for d in datasets(chart) if "data_row" in d)
    assert len(drawn) <= MAX_POINTS and set(top) <= set(drawn["data_row"])
    assert any(sorted(d.get("value", [])) == [-4.0, 4.0] for d in datasets(chart))
    assert spec["height"] >= 380 or spec["layer"][0].get("height", 0) >= 380


def test_dose_labels_are_written_as_users_write_them():
    points = make_points(50, 0.0, 1).assign(quantity="eKtV")
    table = agreement.agreement(None, points=points)
    cal = agreement.calibration(None, points=points)
    curves = agreement.calibration_curves(points)
    for chart in (agreement_charts.bland_altman_chart(points, table, "network", "eKtV"),
                  agreement_charts.calibration_chart(points, curves, cal, "eKtV")):
        words = _words(chart.to_dict())
        assert "eKt/V" in words and "eKtV" not in words and "))" not in words


def test_share_within_chart_numbers_each_bar_with_its_wilson_interval():
    share = pd.DataFrame({"method": ["network", "rate_equation"], "quantity": "Ueq",
                          "tolerance": 5.0, "n": [200, 200], "within": [150, 190],
                          "share": [0.75, 0.95], "ci_low": [0.69, 0.91],
                          "ci_high": [0.80, 0.97]})
    chart = agreement_charts.share_within_chart(share, "Ueq")
    spec = chart.to_dict()
    (drawn,) = [d for d in datasets(chart) if "share" in d]
    assert list(drawn["share"]) == [0.75, 0.95] and list(drawn["ci_high"]) == [0.80, 0.97]
    texts = [e for e in _encodings(spec) if "text" in e]
    assert texts and texts[0]["text"]["field"] == "share" and texts[0]["text"]["format"] == ".0%"
    assert "± 5 mg/dL" in _words(spec)
    # its height is the bars' (a readable row each), titles and axes added around it: Streamlit
    # would otherwise fit the whole figure, titles included, into that height
    assert spec["height"] >= 2 * 30 and spec["autosize"]["type"] == "pad"
    empty = agreement_charts.share_within_chart(share.iloc[:0], "Ueq")
    assert "No test rows" in datasets(empty)[0]["message"].iloc[0]


def test_coverage_chart_puts_the_width_beside_coverage_with_numbers():
    coverage = pd.DataFrame({"method": ["network", "network", "tattersall", "tattersall"],
                             "interval": ["cv_plus", "split_conformal"] * 2,
                             "fold": "pooled", "n": 100, "level": 0.9,
                             "coverage": [0.93, 0.88, 0.91, 0.9],
                             "mean_width": [59.7, 39.1, 8.3, 8.3]})
    spec = agreement_charts.coverage_chart(coverage, 0.9, "Ueq").to_dict()
    assert len(spec["hconcat"]) == 2
    fields = {e["text"]["field"] for e in _encodings(spec) if "text" in e}
    assert fields == {"coverage", "mean_width"}
    assert "mean width (mg/dL)" in _words(spec)
