"""Session length: a column in hours or minutes, or one length, reaching every formula; checked
against Daugirdas' formulas and Tattersall's written out by hand."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp.analyses import agreement, conformal, predict
from bnapp.analyses.baselines import fold_predictions
from bnapp.intake import data, kinetics
from bnapp.intake.duration import (
    DEFAULT_MINUTES,
    SessionLength,
    duration_columns,
    frame_hours,
    in_minutes,
    session_hours,
)
from bnapp.intake.reading import DataError
from tests.apptest import demo_run


def hand_sp(upre, upost, uf, w, t):
    """Daugirdas 2nd generation: -ln(R - 0.008 t) + (4 - 3.5 R) UF / W."""
    r = upost / upre
    return -math.log(r - 0.008 * t) + (4 - 3.5 * r) * uf / w


def hand_rate(sp, t, access="arterial"):
    a, b = (0.6, 0.03) if access == "arterial" else (0.47, 0.02)
    return sp - a * sp / t + b


def hand_tattersall(sp, t_min):
    return sp * t_min / (t_min + 35)


def with_length(column: str, values) -> data.Dataset:
    frame = data.demo_dataset().frame.head(len(values)).copy()
    frame[column] = values
    return data.load_dataset(frame.to_csv(index=False).encode(), "sessions.csv")


@pytest.mark.parametrize(("name", "values", "minutes"), [
    ("Td (min)", [3.5, 4.0], True), ("duration_h", [240.0, 210.0], False),
    ("time", [240.0, 210.0], True), ("Td", [3.5, 4.0, 4.5], False), ("minutes", [4.0], True)])
def test_minutes_or_hours_are_told_by_the_name_else_by_the_values(name, values, minutes):
    assert in_minutes(name, np.array(values)) is minutes


@given(st.lists(st.floats(1.0, 12.0), min_size=1, max_size=30), st.sampled_from(["Td", "time"]))
def test_a_column_named_without_a_unit_is_told_by_its_values(hours, name):
    values = np.array(hours)
    assert not in_minutes(name, values)
    assert in_minutes(name, values * 60)


def test_length_columns_are_found_by_their_names():
    found = duration_columns(["Upre", "patient_id", "Td (min)", "Session time", "liquid",
                              "Duration", "Ueq"])
    assert found == ["Td (min)", "Session time", "Duration"]


def test_a_minutes_column_becomes_hours_per_row_and_a_missing_one_the_default():
    ds = with_length("Td (min)", [240.0, 210.0, 180.0, 270.0])
    hours = session_hours(ds, SessionLength("Td (min)"))
    np.testing.assert_allclose(hours, [4.0, 3.5, 3.0, 4.5])
    np.testing.assert_allclose(session_hours(ds), DEFAULT_MINUTES / 60)
    np.testing.assert_allclose(session_hours(ds, SessionLength(minutes=210)), 3.5)


def test_implausible_lengths_and_bad_settings_are_one_line_naming_the_rows():
    ds = with_length("Td", [4.0, 40.0, 4.0, 4.0])
    with pytest.raises(DataError, match=r"outside 0.5-12 hours in 1 row\(s\) \(rows 3\)"):
        session_hours(ds, SessionLength("Td"))
    with pytest.raises(DataError, match="no numeric column"):
        session_hours(ds, SessionLength("nope"))
    with pytest.raises(DataError, match="positive number of minutes"):
        SessionLength(minutes=0)
    with pytest.raises(DataError, match="access"):
        SessionLength(access="fistula")


@settings(max_examples=60, deadline=None)
@given(upre=st.floats(80, 250), reduction=st.floats(0.25, 0.45), uf=st.floats(0, 4),
       pp=st.floats(50, 120), t=st.floats(2.5, 6), venous=st.booleans())
def test_formula_ueq_gives_back_the_hand_computed_ekt_v(upre, reduction, uf, pp, t, venous):
    access = "venous" if venous else "arterial"
    upos, w = upre * reduction, pp - uf
    frame = pd.DataFrame({"Upre": [upre], "Upos": [upos], "PP": [pp], "UF": [uf]})
    sp = hand_sp(upre, upos, uf, w, t)
    for method, ektv in (("rate_equation", hand_rate(sp, t, access)),
                         ("tattersall", hand_tattersall(sp, 60 * t))):
        ueq = kinetics.predict_ueq(frame, method, t, access)[0]
        # the Ueq found is the one whose Daugirdas dose is the hand-computed eKt/V
        assert hand_sp(upre, ueq, uf, w, t) == pytest.approx(ektv, abs=1e-9)


@pytest.fixture(scope="module")
def run_and_hours():
    run = demo_run().run
    hours = np.random.default_rng(1).uniform(3.0, 5.0, len(run.y))
    return run, hours


def test_each_rows_length_reaches_the_baseline_formulas(run_and_hours):
    run, hours = run_and_hours
    preds = fold_predictions(run, hours, "venous")
    x = pd.DataFrame(run.X, columns=run.features)
    for method in ("rate_equation", "tattersall"):
        rows = preds[preds["method"] == method].head(20)
        for row, ueq in zip(rows["row"], rows["prediction"], strict=True):
            upre, upos, pp, uf, t = (*x.loc[row, ["Upre", "Upos", "PP", "UF"]], hours[row])
            sp = hand_sp(upre, upos, uf, pp - uf, t)
            want = (hand_rate(sp, t, "venous") if method == "rate_equation"
                    else hand_tattersall(sp, 60 * t))
            assert hand_sp(upre, ueq, uf, pp - uf, t) == pytest.approx(want, abs=1e-9)
    four_hours = fold_predictions(run)
    assert not np.allclose(four_hours["prediction"], preds["prediction"])


def test_each_rows_length_reaches_the_ekt_v_of_agreement(run_and_hours):
    run, hours = run_and_hours
    points = agreement.agreement_points(run, t_hours=hours)
    dose = points[(points["quantity"] == "eKtV") & (points["method"] == "network")].head(20)
    x = pd.DataFrame(run.X, columns=run.features)
    for row, measured in zip(dose["row"], dose["measured"], strict=True):
        upre, uf, pp = x.loc[row, ["Upre", "UF", "PP"]]
        assert measured == pytest.approx(hand_sp(upre, run.y[row], uf, pp - uf, hours[row]),
                                         rel=1e-12)


def test_predict_takes_a_length_per_session_and_the_access(run_and_hours):
    run, _ = run_and_hours
    frame = pd.DataFrame(run.X[:3], columns=run.features)
    hours = np.array([3.0, 4.0, 5.0])
    out = predict.predict_sessions(run, frame, hours, level=None, access="venous")
    for i, t in enumerate(hours):
        upre, u120, upos, pp, uf = frame.iloc[i][["Upre", "U120", "Upos", "PP", "UF"]]
        sp = hand_sp(upre, upos, uf, pp - uf, t)
        assert out["spktv"].iloc[i] == pytest.approx(sp, rel=1e-12)
        assert out["ektv_rate_equation"].iloc[i] == pytest.approx(hand_rate(sp, t, "venous"),
                                                                  abs=1e-9)
        assert out["ektv_network"].iloc[i] == pytest.approx(
            hand_sp(upre, out["ueq_network"].iloc[i], uf, pp - uf, t), rel=1e-12)


def test_a_file_with_a_length_column_is_read_and_keeps_it_as_an_extra():
    frame = data.demo_dataset().frame.head(30).copy()
    frame["Td (min)"] = 240.0
    frame.loc[::2, "Td (min)"] = 210.0
    ds = data.load_dataset(io.BytesIO(frame.to_csv(index=False).encode()), "f.csv")
    assert duration_columns(ds.extra_columns) == ["Td (min)"]
    assert session_hours(ds, SessionLength("Td (min)"))[:2].tolist() == [3.5, 4.0]


def test_a_formulas_prediction_for_new_sessions_uses_their_length_and_access(run_and_hours):
    run, _ = run_and_hours
    frame = pd.DataFrame(run.X[:4], columns=run.features)
    hours = np.array([3.0, 3.5, 4.5, 5.0])
    out = predict.predict_method(run, frame, "rate_equation", 0.9, hours, "venous")
    for i, t in enumerate(hours):
        upre, upos, pp, uf = frame.iloc[i][["Upre", "Upos", "PP", "UF"]]
        want = hand_rate(hand_sp(upre, upos, uf, pp - uf, t), t, "venous")
        ueq = out["prediction"].iloc[i]
        assert hand_sp(upre, ueq, uf, pp - uf, t) == pytest.approx(want, abs=1e-9)
        assert out["pi_low"].iloc[i] < ueq < out["pi_high"].iloc[i]


def test_a_frame_gives_its_rows_lengths_or_the_hours_given():
    frame = pd.DataFrame({"Upre": [150.0, 140.0], "Duration (h)": [3.5, 20.0]},
                         index=pd.Index([2, 5], name="row"))
    assert frame_hours(frame[["Upre"]], 4.0, "new.csv") == (4.0, None)
    with pytest.raises(DataError, match=r"new.csv: .* in 1 row\(s\) \(rows 5\)"):
        frame_hours(frame, 4.0, "new.csv")
    frame["Duration (h)"] = [3.5, 4.5]
    hours, column = frame_hours(frame, 4.0, "new.csv")
    assert column == "Duration (h)" and hours.tolist() == [3.5, 4.5]


def test_the_held_out_intervals_centre_on_the_formula_at_each_rows_length(run_and_hours):
    run, hours = run_and_hours
    held = conformal.held_out_intervals(run, t_hours=hours, access="venous")
    rows = held[held["method"] == "tattersall"].head(10)
    x = pd.DataFrame(run.X, columns=run.features)
    for row, ueq in zip(rows["row"], rows["prediction"], strict=True):
        upre, upos, pp, uf, t = (*x.loc[row, ["Upre", "Upos", "PP", "UF"]], hours[row])
        want = hand_tattersall(hand_sp(upre, upos, uf, pp - uf, t), 60 * t)
        assert hand_sp(upre, ueq, uf, pp - uf, t) == pytest.approx(want, abs=1e-9)
