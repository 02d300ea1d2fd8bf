"""The Importance and Agreement pages in the urea unit the sidebar picks (issue 27, item 1):
every urea value, difference and squared error shown divided by the unit's factor (6.006 for
mmol/L, 2.144 for BUN, squared for ΔMSE), its header or axis naming the unit, the dimensionless
numbers unchanged; the acceptable difference typed in the shown unit reaches the analysis in
mg/dL."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from bnapp.analyses import agreement, concordance, conformal, explain
from bnapp.engine.results import INPUT
from bnapp.intake.units import UREA_FACTORS
from bnapp.jobs import page_analyses
from tests.apptest import APP, demo_run, texts

MMOL = UREA_FACTORS["mmol/L"]
BUN = UREA_FACTORS["BUN"]


def page_in(page: str, urea: str, **opened: bool) -> AppTest:
    """`page` with the demo run, urea shown in `urea`, the expanders `opened` open."""
    entry = demo_run()
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["runs"] = {entry.key: entry}
    at.session_state["active_run"] = entry.key
    at.session_state["display_units"] = urea
    for key, is_open in opened.items():
        at.session_state[key.replace("_", "-")] = is_open
    at.run()
    at.switch_page(page).run()
    assert not at.exception
    return at


def shown(at: AppTest, column: str):
    return next(t.value for t in at.dataframe if column in t.value.columns)


def specs(at: AppTest) -> list[dict]:
    """Each chart's Vega-Lite spec, with the data Streamlit sends beside it (as Arrow) back in
    its `datasets`."""
    charts = [*at.get("vega_lite_chart"), *at.get("arrow_vega_lite_chart")]
    return [json.loads(c.proto.spec) | {"datasets": {
        d.name: pa.ipc.open_stream(d.data.data).read_pandas().to_dict("records")
        for d in c.proto.datasets}} for c in charts]


def words(spec: dict) -> str:
    return json.dumps({k: v for k, v in spec.items() if k not in ("datasets", "data")},
                      ensure_ascii=False)


def rows_of(spec: dict, column: str) -> list[dict]:
    found = [row for rows in spec["datasets"].values() for row in rows if column in row]
    assert found, f"no data with {column}"
    return found


@pytest.fixture
def tolerances(monkeypatch) -> list[float]:
    """The acceptable differences (for the target) the Agreement page asks the analysis for."""
    asked, share_within = [], page_analyses.share_within

    def recorded(tolerance, *args, **kwargs):
        asked.append(tolerance)
        return share_within(tolerance, *args, **kwargs)

    monkeypatch.setattr(page_analyses, "share_within", recorded)
    return asked


def test_agreement_in_mmol_per_litre(tolerances):
    run = demo_run().run
    at = page_in("pages/agreement.py", "mmol/L", agreement_calibration_table=True,
                 agreement_coverage_table=True)
    # the default acceptable difference: the library's 5 mg/dL, typed in mmol/L, and asked for
    # as exactly 5.0 (the first visit's cache key)
    box = at.number_input(key="agreement-tolerance-mmol/L")
    assert "(mmol/L)" in box.label and box.value == pytest.approx(5.0 / MMOL)
    assert tolerances[-1] == 5.0
    assert "Ueq in mmol/L" in at.radio(key="agreement-quantity").help
    assert "Units: mmol/L for Ueq, none for eKt/V" in texts(at)

    share = shown(at, "within")
    want = agreement.share_within(run, 5.0)
    assert share["share"].to_numpy() == pytest.approx(want["share"].to_numpy())
    ueq = share["quantity"] == "Ueq"
    assert share.loc[ueq, "tolerance"].to_numpy() == pytest.approx(5.0 / MMOL)
    assert set(share.loc[ueq, "unit"]) == {"mmol/L"} and set(share.loc[~ueq, "unit"]) == {"none"}
    assert share.loc[~ueq, "tolerance"].to_numpy() == pytest.approx(0.1)  # eKt/V: unitless

    table, expected = shown(at, "loa_high"), agreement.agreement(run)
    is_ueq = (expected["quantity"] == "Ueq").to_numpy()
    scale = np.where(is_ueq, MMOL, 1.0)
    for column in ("bias", "loa_low", "loa_high", "sd", "loa_high_ci_high"):
        assert table[column].to_numpy() == pytest.approx(expected[column].to_numpy() / scale)
    assert table["proportional_slope"].to_numpy() == pytest.approx(
        expected["proportional_slope"].to_numpy())  # a slope: dimensionless

    calibration, want_cal = shown(at, "intercept"), agreement.calibration(run)
    assert calibration["intercept"].to_numpy() == pytest.approx(
        want_cal["intercept"].to_numpy() / scale)
    assert calibration["slope"].to_numpy() == pytest.approx(want_cal["slope"].to_numpy())

    coverage, want_cov = shown(at, "mean_width"), conformal.held_out_coverage(run, 0.9)
    assert coverage["mean_width"].to_numpy() == pytest.approx(want_cov["mean_width"] / MMOL)
    assert coverage["coverage"].to_numpy() == pytest.approx(want_cov["coverage"].to_numpy())

    largest = shown(at, "data_row")
    points = agreement.agreement_points(run)
    top = agreement.largest_differences(points, "network", "Ueq")
    for column in ("measured", "predicted", "mean", "difference"):
        assert largest[column].to_numpy() == pytest.approx(top[column].to_numpy() / MMOL)
    assert set(largest["unit"]) == {"mmol/L"}

    share_chart, bland_altman, calibration_chart, coverage_chart = specs(at)
    assert "± 0.833 mmol/L" in words(share_chart)
    assert "method − measured (Ueq, mmol/L)" in words(bland_altman)
    mine = points[(points["method"] == "network") & (points["quantity"] == "Ueq")]
    dots = {r["row"]: r["difference"] for r in rows_of(bland_altman, "row")}
    want_dots = dict(zip(mine["row"], mine["difference"] / MMOL, strict=True))
    assert dots == pytest.approx({row: want_dots[row] for row in dots})
    allowed = [r["value"] for r in rows_of(bland_altman, "value") if "what" not in r]
    assert len(dots) > 100
    assert sorted(allowed) == pytest.approx([-5.0 / MMOL, 5.0 / MMOL])
    assert "predicted (Ueq, mmol/L)" in words(calibration_chart)
    assert "mean width (mmol/L)" in words(coverage_chart)


def test_a_difference_typed_in_mmol_per_litre_is_its_mg_per_dl_equivalent(tolerances):
    """1 mmol/L typed gives the share within 6.006 mg/dL, the mg/dL page's for 6.006 typed."""
    mmol = page_in("pages/agreement.py", "mmol/L")
    mmol.number_input(key="agreement-tolerance-mmol/L").set_value(1.0).run()
    assert not mmol.exception and tolerances[-1] == MMOL
    mgdl = page_in("pages/agreement.py", "mg/dL")
    mgdl.number_input(key="agreement-tolerance-mg/dL").set_value(MMOL).run()
    assert not mgdl.exception and tolerances[-1] == MMOL
    in_mmol, in_mgdl = shown(mmol, "within"), shown(mgdl, "within")
    assert list(in_mmol["within"]) == list(in_mgdl["within"])
    assert in_mmol["share"].to_numpy() == pytest.approx(in_mgdl["share"].to_numpy())
    want = agreement.share_within(demo_run().run, MMOL)
    assert list(in_mmol["within"]) == list(want["within"])
    ueq = in_mmol["quantity"] == "Ueq"
    assert in_mmol.loc[ueq, "tolerance"].to_numpy() == pytest.approx(1.0)
    assert in_mgdl.loc[ueq, "tolerance"].to_numpy() == pytest.approx(MMOL)


def test_agreement_in_bun(tolerances):
    at = page_in("pages/agreement.py", "BUN")
    box = at.number_input(key="agreement-tolerance-BUN")
    assert "(BUN mg/dL)" in box.label and box.value == pytest.approx(5.0 / BUN)
    assert tolerances[-1] == 5.0
    table, expected = shown(at, "loa_high"), agreement.agreement(demo_run().run)
    ueq = (expected["quantity"] == "Ueq").to_numpy()
    assert table.loc[ueq, "bias"].to_numpy() == pytest.approx(expected.loc[ueq, "bias"] / BUN)
    assert table.loc[~ueq, "bias"].to_numpy() == pytest.approx(expected.loc[~ueq, "bias"])
    assert "Units: BUN mg/dL for Ueq" in texts(at)
    assert "method − measured (Ueq, BUN mg/dL)" in words(specs(at)[1])


@pytest.mark.slow
def test_importance_in_mmol_per_litre():
    run = demo_run().run
    at = page_in("pages/importance.py", "mmol/L", imp_per_fold=True, imp_shapley=True)
    expected = concordance.importance_report(run, layers=[INPUT])
    conc = expected["concordance"]
    assert at.dataframe[0].value["estimate"].to_numpy() == pytest.approx(
        conc["estimate"].round(3).to_numpy())  # ranks: as they are

    per_fold, want = shown(at, "importance_unit"), expected["importance"]
    squared = want["definition"].str.startswith("ablation_").to_numpy()
    assert per_fold["importance"].to_numpy() == pytest.approx(
        want["importance"].to_numpy() / np.where(squared, MMOL**2, MMOL))
    assert per_fold["gamma"].to_numpy() == pytest.approx(want["gamma"].to_numpy())
    assert set(per_fold.loc[squared, "importance_unit"]) == {"(mmol/L)²"}
    assert set(per_fold.loc[~squared, "importance_unit"]) == {"mmol/L"}

    shapley = shown(at, "Shapley value (mmol/L)")
    for column, name in (("value", "Shapley value"), ("base_value", "base value"),
                         ("prediction", "prediction")):
        assert shapley[f"{name} (mmol/L)"].to_numpy() == pytest.approx(
            expected["shapley"][column].to_numpy() / MMOL)

    charts = specs(at)
    (bars,) = [s for s in charts if "importance of each unit" in words(s)]
    panels = {r["panel"] for r in rows_of(bars, "panel")}
    assert {"ΔMSE, permuted, (mmol/L)²", "mean |Shapley value|, mmol/L", "|γ|"} <= panels
    (ice,) = [s for s in charts if "ICE and partial dependence" in words(s)]
    assert "predicted Ueq (mmol/L)" in words(ice)
    _, pdp = explain.ice_pdp(run)
    drawn = [r for r in rows_of(ice, "pdp") if r["kind"] == "pdp"]
    assert {r["unit"] for r in drawn} == {"Upre (mmol/L)", "U120 (mmol/L)", "Upos (mmol/L)",
                                          "PP (kg)", "UF (L)"}
    factors = {"Upre": MMOL, "U120": MMOL, "Upos": MMOL, "PP": 1.0, "UF": 1.0}
    for name, factor in factors.items():
        mine = [r for r in drawn if r["unit"].startswith(f"{name} (")]
        want_pdp = pdp[pdp["unit"] == name]
        assert [r["value"] for r in mine] == pytest.approx(list(want_pdp["value"] / factor))
        assert [r["pdp"] for r in mine] == pytest.approx(list(want_pdp["pdp"] / MMOL))
