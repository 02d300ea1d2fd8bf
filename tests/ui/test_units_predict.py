"""Issue 27, item 1 on the Predict page, its what-if section and the `predict` command: urea is
typed, shown and downloaded in the sidebar's unit (a sessions file is read in its own), while
the network gets mg/dL; expected values come from bnapp.analyses in mg/dL, divided here."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bnapp.analyses.predict import predict_sessions
from bnapp.cli import main
from bnapp.intake import data
from bnapp.intake.units import UNIT_LABELS, UREA_COLUMNS
from tests.apptest import app_at, demo_run

PREDICT = "pages/predict.py"
FACTORS = {"mmol/L": 6.006, "BUN": 60.06 / 28.014}  # mg/dL urea per shown unit, by hand
UREA_OUT = ("ueq_network", "ueq_network_sd", "ueq_network_min", "ueq_network_max",
            "ueq_network_pi_low", "ueq_network_pi_high", "ueq_rate_equation", "ueq_tattersall")
UNCHANGED = ("PP", "UF", "ektv_network", "ektv_network_pi_low", "ektv_network_pi_high", "spktv",
             "ektv_rate_equation")


def shown_in(unit: str):
    """The Predict page with the sidebar's 'Show urea in' at `unit`."""
    at = app_at(PREDICT, runs=(demo_run(),))
    rerun(at, unit)
    return at


def rerun(at, unit: str) -> None:
    """Run again in `unit`. After switch_page AppTest's tree holds no sidebar, so it would send
    no value for the switch and the widget would fall back to its first option: set it anew."""
    at.session_state["display_units"] = unit
    at.run()
    assert not at.exception


def headers(at) -> dict[str, str]:
    return {c: v.get("label") for c, v in json.loads(at.dataframe[0].proto.columns).items()}


def patient() -> dict[str, float]:
    row = data.demo_dataset().frame.iloc[0]
    return {c: float(row[c]) for c in data.STUDY_INPUTS}


@pytest.mark.parametrize("unit", ["mmol/L", "BUN"])
def test_the_form_asks_in_the_sidebars_unit_and_answers_in_it(unit):
    factor = FACTORS[unit]
    run = demo_run().run
    at = shown_in(unit)
    fields = {n.key: n for n in at.number_input}
    for i, name in enumerate(run.features):
        if name in UREA_COLUMNS:
            field = fields[f"predict-{name}-{unit}"]
            assert f"({UNIT_LABELS[unit]})" in field.label
            assert field.value == pytest.approx(np.median(run.X[:, i]) / factor, abs=0.005)
    typed = patient()
    for name, value in typed.items():
        key = f"predict-{name}-{unit}" if name in UREA_COLUMNS else f"predict-{name}"
        at.number_input(key=key).set_value(value / factor if name in UREA_COLUMNS else value)
    at.button(key="predict-submit").click()
    rerun(at, unit)
    assert not at.error
    shown = at.dataframe[0].value.iloc[0]
    expected = predict_sessions(run, data.parse_patient(typed)).iloc[0]  # typed in mg/dL
    for column in (*UREA_COLUMNS[:3], *UREA_OUT):
        assert shown[column] == pytest.approx(expected[column] / factor, rel=1e-9), column
    for column in UNCHANGED:
        assert shown[column] == pytest.approx(expected[column], rel=1e-9), column
    shown_unit = "mmol/L" if unit == "mmol/L" else "BUN mg/dL"
    labels = headers(at)
    assert labels["ueq_network"] == f"Ueq, network mean over folds ({shown_unit})"
    assert labels["Upre"] == f"Upre ({shown_unit})" and labels["PP"] == "PP (kg)"
    digits = 2 if unit == "mmol/L" else 1
    assert at.metric[0].value == f"{expected['ueq_network'] / factor:.{digits}f}"
    assert shown_unit in at.metric[0].label


def test_a_typed_session_is_the_same_session_in_either_unit():
    mg = shown_in("mg/dL").dataframe[0].value.iloc[0]
    mmol = shown_in("mmol/L").dataframe[0].value.iloc[0]  # the defaults, re-expressed
    assert mmol["ueq_network"] * 6.006 == pytest.approx(mg["ueq_network"], rel=1e-3)
    assert mmol["ektv_network"] == pytest.approx(mg["ektv_network"], rel=1e-2)


def test_a_sessions_file_is_read_in_its_unit_and_shown_in_the_sidebars():
    run = demo_run().run
    rows = run.X[:3]
    at = shown_in("mmol/L")
    at.radio(key="predict-source").set_value("file")
    rerun(at, "mmol/L")
    files = at.selectbox(key="predict-file-units")
    assert files.value == "mg/dL"  # the loaded data set's (the demo's), not the display's
    mg_file = pd.DataFrame(rows, columns=run.features).to_csv(index=False).encode()
    at.file_uploader(key="predict-upload").set_value(("visits.csv", mg_file, "text/csv"))
    rerun(at, "mmol/L")
    assert not at.error
    expected = run.ensemble_predictions(rows).mean(axis=0)
    np.testing.assert_allclose(at.dataframe[0].value["ueq_network"], expected / 6.006,
                               rtol=1e-9)
    assert headers(at)["ueq_network"] == "Ueq, network mean over folds (mmol/L)"
    mmol_rows = rows / np.array([6.006 if f in UREA_COLUMNS else 1.0 for f in run.features])
    mmol_file = pd.DataFrame(mmol_rows, columns=run.features).to_csv(index=False).encode()
    at.selectbox(key="predict-file-units").set_value("mmol/L")
    at.file_uploader(key="predict-upload").set_value(("visits2.csv", mmol_file, "text/csv"))
    rerun(at, "mmol/L")
    assert not at.error
    np.testing.assert_allclose(at.dataframe[0].value["ueq_network"], expected / 6.006,
                               rtol=1e-9)


def test_what_if_slides_in_the_sidebars_unit():
    run = demo_run().run
    at = shown_in("mmol/L")
    sliders = sorted((s for s in at.slider if s.key.startswith("whatif-")),
                     key=lambda s: int(s.key.rsplit("-", 1)[1]))
    factors = np.array([6.006 if f in UREA_COLUMNS else 1.0 for f in run.features])
    for slider, name in zip(sliders, run.features, strict=True):
        unit = "mmol/L" if name in UREA_COLUMNS else data.LIBRARY_UNITS[name]
        assert slider.label == f"{name} \\({unit}\\)"
    np.testing.assert_allclose([s.value for s in sliders], np.median(run.X, axis=0) / factors,
                               rtol=1e-9)
    metric = at.metric[-1]
    assert metric.label == "predicted Ueq \\(mmol/L\\)"
    session = np.array([s.value for s in sliders]) * factors  # back in mg/dL
    assert float(metric.value) == pytest.approx(
        run.ensemble_predictions(session[None]).mean() / 6.006, abs=0.005)
    sliders[2].set_value(sliders[2].value * 1.3)  # Upos up by 30 %
    rerun(at, "mmol/L")
    session[2] = at.slider(key=sliders[2].key).value * 6.006
    moved = float(at.metric[-1].value)
    assert moved == pytest.approx(run.ensemble_predictions(session[None]).mean() / 6.006,
                                  abs=0.005)
    assert moved != pytest.approx(float(metric.value), abs=1e-6)
    # the what-if figures (waterfall, session ICE) speak the same unit as the sliders
    figures = [json.dumps(json.loads(c.proto.spec)) for c in at.get("vega_lite_chart")][-2:]
    assert all("mmol/L" in f and "mg/dL" not in f for f in figures), figures


def test_the_predict_command_refuses_an_unknown_output_unit(urea_csv, tmp_path, capsys):
    code = main(["predict", "--data", str(urea_csv), "--new", str(urea_csv),
                 "--show-units", "furlongs", "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "furlongs" in err
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.slow
def test_the_predict_command_reads_and_writes_the_units_it_is_told(urea_csv, tmp_path):
    rows = pd.read_csv(urea_csv).head(4)
    mg, mmol = tmp_path / "mg.csv", tmp_path / "mmol.csv"
    rows.to_csv(mg, index=False)
    urea = [c for c in rows.columns if c in UREA_COLUMNS]
    rows.assign(**{c: rows[c] / 6.006 for c in urea}).to_csv(mmol, index=False)
    base = ["predict", "--data", str(urea_csv), "--folds", "3", "--epochs", "5"]
    assert main([*base, "--new", str(mg), "--out", str(tmp_path / "a.csv")]) == 0
    assert main([*base, "--new", str(mmol), "--units", "mmol/L",
                 "--out", str(tmp_path / "b.csv")]) == 0
    assert main([*base, "--new", str(mmol), "--units", "mmol/L", "--show-units", "mg/dL",
                 "--out", str(tmp_path / "c.csv")]) == 0
    a, b, c = (pd.read_csv(tmp_path / f"{n}.csv") for n in "abc")
    for column in ("prediction", "pi_low", "pi_high"):
        np.testing.assert_allclose(b[column] * 6.006, a[column], rtol=1e-9)
        np.testing.assert_allclose(c[column], a[column], rtol=1e-9)
    np.testing.assert_allclose(b["ektv"], a["ektv"], rtol=1e-9)  # a dose has no unit
