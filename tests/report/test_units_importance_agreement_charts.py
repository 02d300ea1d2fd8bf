"""The importance and agreement figures in the urea unit they are given (issue 27, item 1):
values of urea (and their differences, widths, Shapley values) divided by the unit's factor,
ΔMSE by its square, weight and eKt/V as they are; the axes and headers name the unit."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bnapp.analyses import agreement
from bnapp.intake.units import UREA_FACTORS, DisplayUnits
from bnapp.report import agreement_charts as ac
from bnapp.report import importance_charts as ic
from tests.report.test_agreement_charts import make_points

MMOL, BUN = DisplayUnits("mmol/L"), DisplayUnits("BUN")
F_MMOL, F_BUN = UREA_FACTORS["mmol/L"], UREA_FACTORS["BUN"]


def rows(chart, column: str) -> pd.DataFrame:
    """Every drawn row holding `column`, from the chart's datasets."""
    found = [r for data in chart.to_dict()["datasets"].values() for r in data if column in r]
    assert found, f"no data with {column}"
    return pd.DataFrame(found)


def words(chart) -> str:
    spec = chart.to_dict()
    return json.dumps({k: v for k, v in spec.items() if k != "datasets"}, ensure_ascii=False)


def test_bland_altman_in_mmol_per_litre():
    points = make_points(150, 0.05, 3)
    table = agreement.agreement(None, points=points)
    chart = ac.bland_altman_chart(points, table, "network", tolerance=5.0, display=MMOL)
    dots = rows(chart, "row").set_index("row")
    mine = points[points["method"] == "network"].set_index("row").loc[dots.index]
    for column in ("measured", "predicted", "mean", "difference"):
        assert dots[column].to_numpy() == pytest.approx(mine[column].to_numpy() / F_MMOL)
    lines = rows(chart, "what").set_index("what")
    stats = table[table["method"] == "network"].iloc[0]
    assert lines.loc["bias", "value"] == pytest.approx(stats["bias"] / F_MMOL)
    assert lines.loc["upper limit", "high"] == pytest.approx(stats["loa_high_ci_high"] / F_MMOL)
    text = words(chart)
    assert "method − measured (Ueq, mmol/L)" in text and "mg/dL" not in text
    assert f"± {5.0 / F_MMOL:.3g}" in text
    # the slope of the proportional bias is dimensionless
    assert f"slope {stats['proportional_slope']:.3g}" in text
    plain = ac.bland_altman_chart(points, table, "network", tolerance=5.0)
    assert "method − measured (Ueq, mg/dL)" in words(plain)
    assert "acceptable difference ± 5\"" in words(plain)


def test_bland_altman_of_the_dose_is_unchanged():
    points = make_points(80, 0.05, 4).assign(quantity="eKtV")
    table = agreement.agreement(None, points=points)
    shown = ac.bland_altman_chart(points, table, "network", "eKtV", tolerance=0.1, display=BUN)
    plain = ac.bland_altman_chart(points, table, "network", "eKtV", tolerance=0.1)
    assert shown.to_dict() == plain.to_dict()


def test_calibration_in_bun():
    points = make_points(120, 0.05, 5)
    curves = agreement.calibration_curves(points)
    table = agreement.calibration(None, points=points)
    chart = ac.calibration_chart(points, curves, table, display=BUN)
    dots = rows(chart, "kind")
    dots = dots[dots["kind"] == "dot"]
    assert dots["measured"].min() == pytest.approx(points["measured"].min() / F_BUN)
    fit = table.set_index("method").loc["network"]
    text = words(chart)
    assert "predicted (Ueq, BUN mg/dL)" in text
    assert f"slope {fit['slope']:.3g}" in text  # dimensionless
    assert f"intercept {fit['intercept'] / F_BUN:.3g}" in text


def test_coverage_widths_in_mmol_per_litre_coverage_as_is():
    coverage = pd.DataFrame({"method": ["network", "network"], "interval": ["cv_plus",
                                                                           "split_conformal"],
                             "fold": "pooled", "n": 100, "level": 0.9, "coverage": [0.93, 0.88],
                             "mean_width": [60.06, 30.03]})
    chart = ac.coverage_chart(coverage, 0.9, "Ueq", display=MMOL)
    drawn = rows(chart, "mean_width")
    assert list(drawn["mean_width"]) == pytest.approx([10.0, 5.0])
    assert list(drawn["coverage"]) == [0.93, 0.88]
    assert "mean width (mmol/L)" in words(chart)
    other = ac.coverage_chart(coverage, 0.9, "PP", display=MMOL)  # a target in kg: as is
    assert list(rows(other, "mean_width")["mean_width"]) == [60.06, 30.03]
    assert "mean width (kg)" in words(other)


def test_share_within_names_the_difference_in_the_shown_unit():
    share = pd.DataFrame({"method": ["network", "network"], "quantity": ["Ueq", "eKtV"],
                          "tolerance": [5.0, 0.1], "n": 200, "within": [150, 160],
                          "share": [0.75, 0.8], "ci_low": [0.69, 0.74],
                          "ci_high": [0.80, 0.85]})
    chart = ac.share_within_chart(share, "Ueq", display=MMOL)
    assert "within ± 0.833 mmol/L" in words(chart)
    assert list(rows(chart, "share")["share"]) == [0.75]  # a share: as is
    assert "± 2.33 BUN mg/dL" in words(ac.share_within_chart(share, "Ueq", display=BUN))
    dose = words(ac.share_within_chart(share, "eKtV", display=MMOL))
    assert "within ± 0.1" in dose and "mmol/L" not in dose  # eKt/V: unitless
    table = ac.shown_table(share, MMOL)
    assert list(table["tolerance"]) == pytest.approx([5.0 / F_MMOL, 0.1])
    assert list(table["unit"]) == ["mmol/L", "none"] and list(table["quantity"]) == ["Ueq",
                                                                                      "eKt/V"]
    assert list(share["quantity"]) == ["Ueq", "eKtV"], "the caller's frame is left as it is"


def importance_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "fold": [0, 0, 1, 1], "unit": ["Upre", "Upre", "Upre", "Upre"],
        "definition": ["shapley", "ablation_permutation"] * 2,
        "importance": [6.006, 36.072036, 12.012, 72.144072], "gamma": [0.5, 0.5, 0.7, 0.7]})


def test_importance_bars_per_definition_in_its_power_of_the_unit():
    chart = ic.importance_bars(importance_frame(), "Input BN", target="Ueq", display=MMOL)
    stats = rows(chart, "panel").set_index("panel")
    assert stats.loc["mean |Shapley value|, mmol/L", "mean"] == pytest.approx(1.5)
    assert stats.loc["ΔMSE, permuted, (mmol/L)²", "mean"] == pytest.approx(1.5)
    assert stats.loc["ΔMSE, permuted, (mmol/L)²", "high"] == pytest.approx(2.0)
    assert stats.loc[ic.GAMMA, "mean"] == pytest.approx(0.6)  # |γ|: dimensionless
    table = ic.shown_importance(importance_frame(), "Ueq", BUN)
    assert list(table["importance"]) == pytest.approx(
        [6.006 / F_BUN, 36.072036 / F_BUN**2, 12.012 / F_BUN, 72.144072 / F_BUN**2])
    assert list(table["importance_unit"]) == ["BUN mg/dL", "(BUN mg/dL)²"] * 2
    plain = rows(ic.importance_bars(importance_frame(), "Input BN"), "panel")
    assert set(plain["panel"]) == {ic.GAMMA, "mean |Shapley value|", "ΔMSE, permuted"}


def test_ice_pdp_each_input_in_its_unit_the_prediction_in_the_targets():
    grid = {"Upre": [60.06, 120.12], "PP": [70.0, 80.0]}
    pdp = pd.DataFrame([{"unit": u, "value": v, "pdp": 60.06, "pdp_low": 54.054,
                         "pdp_high": 66.066, "pdp_sd": 1.0, "in_training_range": i == 0}
                        for u, values in grid.items() for i, v in enumerate(values)])
    ice = pd.DataFrame([{"unit": u, "value": v, "row": r, "prediction": 30.03}
                        for u, values in grid.items() for v in values for r in (1, 2)])
    chart = ic.ice_pdp_chart(ice, pdp, target="Ueq", display=MMOL)
    drawn = rows(chart, "kind")
    curve = drawn[drawn["kind"] == "pdp"].set_index("unit")
    assert list(curve.loc["Upre (mmol/L)", "value"]) == pytest.approx([10.0, 20.0])
    assert list(curve.loc["PP (kg)", "value"]) == [70.0, 80.0]
    assert list(curve["pdp"]) == pytest.approx([10.0] * 4)
    assert list(curve["pdp_low"]) == pytest.approx([9.0] * 4)
    lines = drawn[drawn["kind"] == "ice"]
    assert list(lines["prediction"]) == pytest.approx([5.0] * len(lines))
    beyond = drawn[drawn["kind"] == "beyond"].set_index("unit")
    assert list(beyond.loc[["Upre (mmol/L)"], "value_end"]) == pytest.approx([20.0])
    text = words(chart)
    assert "predicted Ueq (mmol/L)" in text and "Upre (mmol/L)" in text


def test_shapley_waterfall_and_session_ice_in_bun():
    contributions = pd.DataFrame({"unit": ["Upre", "PP"], "value": [50 * F_BUN, 70.0],
                                  "contribution": [2 * F_BUN, -F_BUN], "contribution_sd": 0.1})
    chart = ic.shapley_waterfall(contributions, 10 * F_BUN, target="Ueq", display=BUN)
    steps = rows(chart, "step")
    assert list(steps["amount"]) == pytest.approx([10.0, 2.0, -1.0, 11.0])
    assert "Upre (BUN mg/dL) = 50" in list(steps["step"])
    assert "PP (kg) = 70" in list(steps["step"])
    assert "predicted Ueq (BUN mg/dL)" in words(chart)
    ice = pd.DataFrame({"unit": ["Upre", "Upre"], "value": [20 * F_BUN, 30 * F_BUN],
                        "prediction": [10 * F_BUN, 20 * F_BUN], "low": [0.0, 10 * F_BUN],
                        "high": [20 * F_BUN, 30 * F_BUN]})
    session = ic.session_ice_chart(ice, contributions, target="Ueq", display=BUN)
    drawn = rows(session, "kind")
    curve = drawn[drawn["kind"] == "curve"]
    assert list(curve["value"]) == pytest.approx([20.0, 30.0])
    assert list(curve["high"]) == pytest.approx([20.0, 30.0])
    here = drawn[drawn["kind"] == "session"].set_index("unit")["value"]
    assert here["Upre (BUN mg/dL)"] == pytest.approx(50.0) and here["PP (kg)"] == 70.0
    assert contributions["value"].iloc[0] == 50 * F_BUN, "the caller's frame is as it was"
