"""The Agreement page and the Predict page's prediction interval, driven through AppTest."""

from __future__ import annotations

import json

import pytest

from bnapp.analyses import agreement, conformal
from bnapp.analyses.predict import predict_sessions
from bnapp.intake import data
from bnapp.report.style import METHOD_LABELS
from tests.apptest import app_at, demo_run, texts


def test_agreement_page_asks_for_a_run_first():
    at = app_at("pages/agreement.py")
    assert not at.exception
    assert "No trained network yet" in texts(at)


@pytest.mark.slow
def test_agreement_page_shows_bland_altman_calibration_and_coverage():
    entry = demo_run()
    at = app_at("pages/agreement.py", runs=(entry,))
    assert not at.exception
    text = texts(at)
    assert "How to read a Bland–Altman plot" in text and "CV+" in text
    expected = agreement.agreement(entry.run)
    shown = next(t for t in at.dataframe if "loa_high_ci_high" in t.value.columns).value
    assert shown["loa_high"].to_numpy() == pytest.approx(expected["loa_high"].to_numpy())
    assert set(shown["ci_method"]) == {"exact"}
    assert len(at.dataframe) == 1, "the numbers behind calibration and coverage wait to be opened"
    open_tables(at)
    assert "slope_ci_low" in at.dataframe[1].value.columns  # the calibration table
    coverage = next(t for t in at.dataframe if "coverage" in t.value.columns).value
    want = conformal.held_out_coverage(entry.run, 0.9)
    assert coverage["coverage"].to_numpy() == pytest.approx(want["coverage"].to_numpy())
    assert set(coverage["interval"]) == {"cv_plus", "split_conformal"}
    assert "CV+ (as Predict gives), nested" in text and "held-out split-conformal" in text
    charts = list(at.get("vega_lite_chart"))
    assert len(charts) == 1 + 2  # Bland–Altman of the method picked, calibration, coverage
    methods = list(dict.fromkeys(agreement.agreement_points(entry.run)["method"]))
    assert len(methods) == 4 and METHOD_LABELS[methods[0]] in _title(charts[0])
    at.button_group(key="agreement-method").set_value(methods[2]).run()
    assert not at.exception
    assert METHOD_LABELS[methods[2]] in _title(at.get("vega_lite_chart")[0])


def open_tables(at) -> None:
    """Open the expanders holding the numbers behind the calibration and coverage figures."""
    for key in ("agreement-calibration-table", "agreement-coverage-table"):
        at.session_state[key] = True
    at.run()
    assert not at.exception


def _title(chart) -> str:
    return json.loads(chart.proto.spec)["title"]["text"]


@pytest.mark.slow
def test_agreement_controls_change_the_tables():
    entry = demo_run()
    at = app_at("pages/agreement.py", runs=(entry,))
    open_tables(at)
    at.selectbox(key="agreement-ci").set_value("approximate").run()
    at.slider(key="agreement-level").set_value(0.8).run()
    assert not at.exception
    shown = next(t for t in at.dataframe if "loa_high_ci_high" in t.value.columns).value
    assert set(shown["ci_method"]) == {"approximate"}
    coverage = next(t for t in at.dataframe if "coverage" in t.value.columns).value
    assert set(coverage["level"]) == {0.8}
    at.radio(key="agreement-quantity").set_value("eKtV").run()
    assert not at.exception
    # the plots now compare doses
    assert any("eKt/V" in str(c.proto.spec) for c in at.get("vega_lite_chart"))


def test_predict_page_shows_the_interval_and_the_dose_interval():
    entry = demo_run()
    at = app_at("pages/predict.py", runs=(entry,))
    assert not at.exception
    shown = at.dataframe[0].value
    assert {"ueq_network_pi_low", "ueq_network_pi_high", "ektv_network_pi_low",
            "ektv_network_pi_high"} <= set(shown.columns)
    first = shown.iloc[0]
    frame = data.parse_patient({c: first[c] for c in data.STUDY_INPUTS})
    expected = predict_sessions(entry.run, frame, level=0.9).iloc[0]
    assert first["ueq_network_pi_low"] == pytest.approx(expected["ueq_network_pi_low"])
    text = texts(at)
    assert (f"90% prediction interval: {expected['ueq_network_pi_low']:.1f} to "
            f"{expected['ueq_network_pi_high']:.1f}") in text
    assert (f"90% interval: {expected['ektv_network_pi_low']:.2f} to "
            f"{expected['ektv_network_pi_high']:.2f}") in text
    at.slider(key="predict-level").set_value(0.6).run()
    assert not at.exception
    narrower = at.dataframe[0].value.iloc[0]
    assert narrower["ueq_network_pi_high"] - narrower["ueq_network_pi_low"] < (
        first["ueq_network_pi_high"] - first["ueq_network_pi_low"])
    assert "60% prediction interval" in texts(at)
