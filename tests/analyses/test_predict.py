"""Predictions for new sessions: fold ensemble, implied dose, clinical formulas, sessions files."""

from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bnapp.analyses.predict import ektv_from_ueq, in_units, indexed_by_row, predict_sessions
from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol
from bnapp.engine.train import train_run
from bnapp.intake import data, kinetics
from bnapp.intake.data import DataError
from bnapp.intake.units import DisplayUnits
from tests.apptest import demo_run

FEATURES = data.STUDY_INPUTS
# plausible sessions: urea mg/dL, weight kg, UF L (Upos below Upre, as in any session)
SESSION = st.tuples(st.floats(60, 300), st.floats(0.3, 0.8), st.floats(0.2, 0.6),
                    st.floats(40, 150), st.floats(0, 5)).map(
    lambda v: {"Upre": v[0], "U120": v[0] * v[1], "Upos": v[0] * v[2], "PP": v[3], "UF": v[4]})


def _frame(sessions: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(sessions, columns=FEATURES, dtype=np.float64)


@settings(max_examples=25, deadline=None)
@given(st.lists(SESSION, min_size=1, max_size=6), st.sampled_from(["raw", "zscore"]))
def test_ensemble_is_the_mean_and_spread_of_the_fold_models(sessions, mode):
    run = demo_run(mode).run
    out = predict_sessions(run, _frame(sessions))
    x = _frame(sessions).to_numpy()
    per_fold = [run.fold_predictions(f, x) for f in run.folds]
    for i in range(len(sessions)):
        values = [float(p[i]) for p in per_fold]
        assert out["ueq_network"].iloc[i] == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert out["ueq_network_sd"].iloc[i] == pytest.approx(statistics.stdev(values), rel=1e-9)
        assert out["ueq_network_min"].iloc[i] == min(values)
        assert out["ueq_network_max"].iloc[i] == max(values)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.3, 2.5), st.floats(50, 300), st.floats(0, 5), st.floats(40, 150),
       st.floats(2.5, 6))
def test_implied_ektv_inverts_ueq_from_ektv(ektv, upre, uf, weight, t):
    ueq = kinetics.ueq_from_ektv(ektv, upre, uf, weight, t)
    assert np.isfinite(ueq)
    assert float(ektv_from_ueq(ueq, upre, uf, weight, t)) == pytest.approx(ektv, abs=1e-9)


@given(arrays(np.float64, 5, elements=st.floats(0.35, 0.95)), st.floats(60, 250),
       st.floats(0, 4), st.floats(45, 120), st.floats(3, 5))
def test_implied_ektv_is_the_daugirdas_formula_with_ueq(ratios, upre, uf, weight, t):
    ueq = ratios * upre
    expected = [-math.log(r - 0.008 * t) + (4 - 3.5 * r) * uf / weight for r in ratios]
    np.testing.assert_allclose(ektv_from_ueq(ueq, upre, uf, weight, t), expected, rtol=1e-12)


def test_the_formula_columns_are_the_clinical_formulas():
    run = demo_run().run
    frame = data.demo_dataset().frame.head(20)
    out = predict_sessions(run, frame, t_hours=3.5)
    for i, row in frame.reset_index(drop=True).iterrows():
        r, w = row.Upos / row.Upre, row.PP - row.UF
        sp = -math.log(r - 0.008 * 3.5) + (4 - 3.5 * r) * row.UF / w
        assert out["spktv"].iloc[i] == pytest.approx(sp, rel=1e-12)
        assert out["ektv_rate_equation"].iloc[i] == pytest.approx(sp - 0.6 * sp / 3.5 + 0.03,
                                                                  rel=1e-9)
        assert out["ektv_tattersall"].iloc[i] == pytest.approx(sp * 210 / (210 + 35), rel=1e-9)
    np.testing.assert_allclose(out["ueq_rate_equation"],
                               kinetics.predict_ueq(frame, "rate_equation", 3.5), rtol=1e-12)


def test_inputs_are_taken_by_name_and_the_index_is_kept():
    run = demo_run().run
    frame = data.demo_dataset().frame.head(3)
    shuffled = frame[["UF", "Ueq", "PP", "Upre", "Upos", "U120"]].set_axis([7, 8, 9])
    out = predict_sessions(run, shuffled)
    np.testing.assert_array_equal(out.index, [7, 8, 9])
    np.testing.assert_allclose(out["ueq_network"], run.ensemble_predictions(
        frame[FEATURES].to_numpy()).mean(axis=0), rtol=1e-12)


def test_inputs_beyond_the_training_data_are_flagged():
    run = demo_run().run
    frame = data.demo_dataset().frame.head(2).reset_index(drop=True)
    frame.loc[1, ["Upre", "UF"]] = run.X[:, 0].max() + 1, run.X[:, 4].min() - 0.1
    assert predict_sessions(run, frame)["outside_training_range"].tolist() == ["", "Upre, UF"]


def test_a_missing_input_is_named():
    frame = data.demo_dataset().frame.drop(columns="U120")
    with pytest.raises(DataError, match="U120"):
        predict_sessions(demo_run().run, frame)


def test_a_bad_session_time_is_refused():
    with pytest.raises(DataError, match="session time"):
        predict_sessions(demo_run().run, data.demo_dataset().frame.head(1), t_hours=0)


def test_one_fold_has_no_spread():
    run = demo_run().run
    single = dataclasses.replace(run, folds=run.folds[:1])
    out = predict_sessions(single, data.demo_dataset().frame.head(2))
    assert out["ueq_network_sd"].isna().all()
    assert (out["ueq_network"] == out["ueq_network_min"]).all()


def test_without_the_formulas_inputs_only_the_network_predicts():
    ds = data.demo_dataset()
    features = ["Upre", "U120", "Upos", "PP"]
    run = train_run(ds.X(features), ds.y(), ArchSpec.study_e2e(), Protocol(folds=2, epochs=2),
                    features=features)
    out = predict_sessions(run, ds.frame[features].head(3))
    assert "ueq_network" in out and not {"spktv", "ueq_rate_equation", "ektv_network"} & set(out)


def test_a_run_predicting_another_outcome_gets_no_dose():
    run = dataclasses.replace(demo_run().run, target="Kt")
    out = predict_sessions(run, data.demo_dataset().frame.head(2))
    assert "ueq_network" in out and not {"spktv", "ektv_network"} & set(out)


@pytest.mark.parametrize(("target", "converted", "unit"), [
    ("PP", False, "kg"), ("Kt", False, "units of Kt"), ("Upos", True, "mmol/L")])
def test_a_prediction_of_another_target_keeps_its_own_unit_and_name(target, converted, unit):
    run = dataclasses.replace(demo_run().run, target=target)
    out = predict_sessions(run, data.demo_dataset().frame.head(3))
    shown, labels = in_units(out, DisplayUnits("mmol/L"), target)
    factor = 6.006 if converted else 1.0  # mg/dL urea per mmol/L
    for column in ("ueq_network", "ueq_network_sd", "ueq_network_min", "ueq_network_max"):
        np.testing.assert_allclose(shown[column] * factor, out[column], rtol=1e-12)
    np.testing.assert_allclose(shown["Upre"] * 6.006, out["Upre"], rtol=1e-12)  # inputs: urea
    assert labels["ueq_network"] == f"{target}, network mean over folds ({unit})"
    assert labels["ueq_network_sd"] == f"{target}, SD across folds ({unit})"


def test_urea_values_are_shown_in_the_users_unit():
    out = predict_sessions(demo_run().run, data.demo_dataset().frame.head(3))
    shown, labels = in_units(out, DisplayUnits("BUN"))
    bun = 60.06 / 28.014  # mg/dL urea per mg/dL urea nitrogen
    for column in ("Upre", "U120", "Upos", "ueq_network", "ueq_network_sd", "ueq_rate_equation"):
        np.testing.assert_allclose(shown[column] * bun, out[column], rtol=1e-12)
    for column in ("PP", "UF", "ektv_network", "spktv"):
        np.testing.assert_array_equal(shown[column], out[column])
    assert labels["Upre"] == "Upre (BUN mg/dL)" and labels["PP"] == "PP (kg)"
    assert labels["ueq_network"] == "Ueq, network mean over folds (BUN mg/dL)"
    assert set(labels) == set(out.columns)


# ---------------------------------------------------------------------------- sessions files

SESSIONS_CSV = ("Urea pre (mg/dL);urea_120;Post urea;Weight;UF;note\n"
                "96,0;61,2;43,0;89,4;2,2;a\n"
                "182,6;114,6;abc;102,8;3,3;b\n"
                "\n"
                "149,5;100,1;70,7;91,8;4,1;c\n")


def test_predictions_for_a_sessions_file_point_back_to_its_rows():
    sessions = data.load_sessions(SESSIONS_CSV.encode(), FEATURES, "visits.csv")
    frame = indexed_by_row(sessions)
    np.testing.assert_array_equal(frame.index, [2, 5])  # spreadsheet rows, header = row 1
    assert frame.index.name == "row"
    np.testing.assert_allclose(frame.loc[5, FEATURES].to_numpy(), [149.5, 100.1, 70.7, 91.8, 4.1])
    out = predict_sessions(demo_run().run, frame)
    np.testing.assert_array_equal(out.index, [2, 5])
    expected = demo_run().run.ensemble_predictions(sessions.X(FEATURES)).mean(axis=0)
    np.testing.assert_allclose(out["ueq_network"], expected, rtol=1e-12)


def test_a_network_on_three_inputs_needs_only_those_in_the_file():
    ds = data.demo_dataset()
    features = ["Upre", "Upos", "UF"]
    run = train_run(ds.X(features), ds.y(), ArchSpec.study_e2e(), Protocol(folds=2, epochs=2),
                    features=features)
    text = "Upre,Upos,UF\n150,50,2\n120,40,1.5\n"
    out = predict_sessions(run, indexed_by_row(data.load_sessions(text.encode(), run.features)))
    np.testing.assert_allclose(out["ueq_network"], run.ensemble_predictions(
        np.array([[150, 50, 2], [120, 40, 1.5]])).mean(axis=0), rtol=1e-12)


def test_predictions_carry_the_cv_plus_interval_and_the_dose_it_implies():
    from bnapp.analyses import conformal

    run = demo_run().run
    frame = pd.DataFrame(run.X[:4], columns=FEATURES)
    out = predict_sessions(run, frame, level=0.8)
    low, high = conformal.new_intervals(run, run.X[:4], "network", 0.8)
    assert np.allclose(out["ueq_network_pi_low"], low)
    assert np.allclose(out["ueq_network_pi_high"], high)
    assert (out["ueq_network_pi_low"] < out["ueq_network"]).all()
    # a higher Ueq is a lower dose: the eKt/V interval's low end comes from Ueq's high end
    w = frame["PP"] - frame["UF"]
    assert np.allclose(out["ektv_network_pi_low"],
                       ektv_from_ueq(high, frame["Upre"], frame["UF"], w))
    assert (out["ektv_network_pi_low"] < out["ektv_network"]).all()
    assert (out["ektv_network"] < out["ektv_network_pi_high"]).all()
    wider = predict_sessions(run, frame, level=0.95)
    assert (wider["ueq_network_pi_high"] >= out["ueq_network_pi_high"]).all()
    assert "ueq_network_pi_low" not in predict_sessions(run, frame, level=None).columns
    shown, labels = in_units(out, DisplayUnits("mmol/L"))
    assert shown["ueq_network_pi_low"].to_numpy() == pytest.approx(low / 6.006)
    assert labels["ueq_network_pi_low"] == "Ueq, prediction interval low (mmol/L)"


def test_predict_method_gives_the_network_what_predict_sessions_gives_and_formulas_theirs():
    from bnapp.analyses import conformal
    from bnapp.analyses.predict import predict_method
    from tests.apptest import demo_run

    run = demo_run().run
    frame = pd.DataFrame(run.X[:7], columns=run.features, index=range(2, 9))
    net = predict_method(run, frame, "network", 0.8)
    full = predict_sessions(run, frame, level=0.8)
    assert list(net.index) == list(frame.index)
    np.testing.assert_allclose(net["prediction"], full["ueq_network"], rtol=1e-12)
    np.testing.assert_allclose(net[["pi_low", "pi_high"]],
                               full[["ueq_network_pi_low", "ueq_network_pi_high"]], rtol=1e-12)
    np.testing.assert_allclose(net["ektv"], full["ektv_network"], rtol=1e-12)
    rate = predict_method(run, frame, "rate_equation", 0.8)
    np.testing.assert_allclose(rate["prediction"], kinetics.predict_ueq(frame, "rate_equation"),
                               rtol=1e-12)
    low, high = conformal.new_intervals(run, frame.to_numpy(), "rate_equation", 0.8)
    np.testing.assert_allclose(rate["pi_high"] - rate["pi_low"], high - low, rtol=1e-12)
    assert (rate["ektv_pi_low"] < rate["ektv"]).all() and (rate["ektv"] < rate["ektv_pi_high"]).all()
