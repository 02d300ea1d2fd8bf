"""The Grid search, Baselines and Predict pages, driven through AppTest on the demo cohort."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pyarrow as pa
import pytest

from bnapp.analyses import baselines
from bnapp.analyses.predict import predict_sessions
from bnapp.engine import grid
from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol
from bnapp.engine.train import train_run
from bnapp.intake import data
from bnapp.intake.units import UREA_COLUMNS
from bnapp.jobs import cached, payloads, scheduler
from bnapp.report.page_tables import verdict_sentence
from bnapp.ui.state import RunEntry, run_label
from tests.apptest import app_at, demo_run, texts


def charts_on(at) -> list:
    return list(at.get("vega_lite_chart"))


def chart_spec(chart) -> dict:
    return json.loads(chart.proto.spec)


def chart_values(chart) -> list[dict]:
    """The rows of every data set the chart sends (streamlit ships them apart, as Arrow)."""
    return [row for named in chart.proto.datasets
            for row in pa.ipc.open_stream(named.data.data).read_pandas().to_dict("records")]


@cache
def seeded_grid():
    """A small grid as the grid job delivers it (through the cache's canonical form)."""
    ds = data.demo_dataset()
    specs = [s for s in grid.study_grid() if s.hidden in ((2,), (3,), (2, 2))
             and s.activation in ("sigmoid", "tanh") and s.output_activation == "linear"]
    frame = grid.run_grid(ds.X(data.STUDY_INPUTS), ds.y(), Protocol(folds=2, epochs=3), specs,
                          features=data.STUDY_INPUTS, n_jobs=1)
    return payloads.canonical_grid(frame)


BEST, SIMPLEST, ALL = range(3)  # the grid page's tables, in order


def grid_page():
    at = app_at("pages/grid.py")
    at.session_state["grid_result"] = seeded_grid()
    return at.run()


# ---------------------------------------------------------------------------------- grid search

def test_grid_page_offers_the_search_before_any_run():
    at = app_at("pages/grid.py")
    assert not at.exception
    assert at.number_input(key="grid-folds").value == 5
    assert at.number_input(key="grid-epochs").value == 200
    assert at.button(key="grid-run").label == "Run the grid search"
    assert "No grid results" in texts(at)


def test_grid_page_shows_the_best_per_mode_and_the_heatmap():
    at = grid_page()
    assert not at.exception
    frame = seeded_grid()
    best = grid.best_per_mode(frame)
    shown = at.dataframe[0].value
    assert list(shown["label"]) == list(best["label"])
    np.testing.assert_allclose(shown["cv_rmse"], np.sqrt(best["cv_mse_mean"]))
    assert len(at.dataframe[ALL].value) == len(frame)
    simplest = grid.simplest_near_best(frame)
    assert list(at.dataframe[SIMPLEST].value["label"]) == list(simplest["label"])
    shown_all = at.dataframe[ALL].value.set_index("label")["near_best"]
    np.testing.assert_array_equal(shown_all.loc[frame["label"]].to_numpy(),
                                  grid.near_best(frame).to_numpy())
    assert "Within one standard error of the best" in texts(at)
    assert at.dataframe[ALL].value["cv_mse_mean"].is_monotonic_increasing
    (heatmap,) = charts_on(at)
    outlined = {row["label"] for row in chart_values(heatmap) if row.get("best")}
    assert outlined == set(best["label"])


def test_grid_filters_and_sorting_change_the_table_and_the_heatmap():
    at = grid_page()
    assert {row["row"] for row in chart_values(charts_on(at)[0])} == {
        "tanh → linear", "sigmoid → linear"}
    at.multiselect(key="grid-filter-activation").set_value(["tanh"]).run()
    table = at.dataframe[ALL].value
    assert set(table["activation"]) == {"tanh"} and len(table) == len(seeded_grid()) // 2
    assert {row["row"] for row in chart_values(charts_on(at)[0])} == {"tanh → linear"}
    at.multiselect(key="grid-filter-bn").set_value([False]).run()
    assert not at.dataframe[ALL].value["bn"].any()
    at.selectbox(key="grid-sort").set_value("total_params").run()
    assert at.dataframe[ALL].value["total_params"].is_monotonic_increasing
    at.multiselect(key="grid-filter-mode").set_value([]).run()
    assert not at.exception and "No network matches" in texts(at)


@pytest.fixture
def fake_engine(monkeypatch):
    """Jobs that finish at once: the grid returns the seeded frame, training the demo run."""
    submitted = []
    trained = demo_run().run  # before the patch: demo_run trains through the job's own path

    def run_grid(X, y, protocol, specs, **kwargs):
        submitted.append(("grid", protocol))
        return seeded_grid()

    def train(X, y, spec, protocol, **kwargs):  # in place of the job, not the worker's call
        submitted.append((spec, protocol))
        return trained

    monkeypatch.setattr(cached, "run_grid", run_grid)
    monkeypatch.setattr(cached, "cached_train", train)
    return submitted


def wait_for_jobs(at) -> None:
    for job_id in at.session_state["job_ids"]:
        scheduler.job_manager().get(job_id).result(timeout=60)


def test_grid_and_train_buttons_submit_jobs_with_the_chosen_protocol(fake_engine):
    at = app_at("pages/grid.py")
    at.number_input(key="grid-folds").set_value(3)
    at.number_input(key="grid-epochs").set_value(7)
    at.button(key="grid-run").click().run()
    assert not at.exception
    wait_for_jobs(at)
    assert fake_engine == [("grid", Protocol(folds=3, epochs=7))]
    at.run()
    assert not at.exception and not at.warning
    best = grid.best_per_mode(seeded_grid())
    assert list(at.dataframe[0].value["label"]) == list(best["label"])

    at.button(key="grid-train-zscore").click().run()
    assert not at.exception
    wait_for_jobs(at)
    spec, protocol = fake_engine[-1]
    zscore = best[best["input_mode"] == "zscore"].iloc[0]
    assert spec == grid.grid_spec(zscore) and protocol == Protocol(folds=3, epochs=7)


def test_the_grid_runs_the_part_chosen_without_the_stability_check(monkeypatch):
    calls = []

    def run_grid(X, y, protocol, specs, **kwargs):
        calls.append((protocol, specs, kwargs))
        return seeded_grid()

    monkeypatch.setattr(cached, "run_grid", run_grid)
    at = app_at("pages/grid.py")
    at.multiselect(key="grid-depths").set_value([1]).run()
    at.multiselect(key="grid-activations").set_value(["sigmoid"]).run()
    at.checkbox(key="grid-stability").uncheck().run()
    chosen = grid.grid_specs(depths=(1,), activations=("sigmoid",))
    assert len(chosen) == 40 and f"{len(chosen)} of 480 networks chosen." in texts(at)
    at.button(key="grid-run").click().run()
    assert not at.exception
    wait_for_jobs(at)
    (protocol, specs, kwargs), = calls
    assert specs == chosen
    assert kwargs["stability"] is False and kwargs.get("groups") is None


def test_the_grid_can_keep_a_patients_sessions_together(monkeypatch):
    calls = []
    monkeypatch.setattr(cached, "run_grid", lambda X, y, protocol, specs, **kw: (
        calls.append((protocol, kw)), seeded_grid())[1])
    ds = data.demo_dataset()
    patients = np.repeat(np.arange(len(ds.frame) // 4 + 1), 4)[: len(ds.frame)]
    frame = ds.frame.assign(patient=patients.astype(str))
    at = app_at("pages/grid.py")
    at.session_state["dataset"] = data.load_dataset(frame.to_csv(index=False).encode(), "p.csv")
    at.run()
    at.selectbox(key="grid-group-by").set_value("patient").run()
    at.button(key="grid-run").click().run()
    assert not at.exception
    wait_for_jobs(at)
    (protocol, kwargs), = calls
    assert protocol.kind == "group-kfold" and protocol.group_by == "patient"
    np.testing.assert_array_equal(np.asarray(kwargs["groups"], dtype=str), patients.astype(str))


def test_a_grid_too_big_for_the_data_is_refused_with_a_message():
    small = data.load_dataset(b"Upre,U120,Upos,PP,UF,Ueq\n" + b"".join(
        f"{150 + i},{80 + i},{50 + i},{70 + i},{2 + i / 10},{55 + i}\n".encode()
        for i in range(8)), "small.csv")
    at = app_at("pages/grid.py")
    at.session_state["dataset"] = small
    at.run()
    at.button(key="grid-run").click().run()
    assert not at.exception
    assert "too few" in at.error[0].value
    assert at.session_state["job_ids"] == [], "no job submitted"


# ------------------------------------------------------------------------------------ baselines

def test_baselines_page_asks_for_a_run_first():
    at = app_at("pages/baselines.py")
    assert not at.exception
    assert "No trained network yet" in texts(at)


def test_baselines_page_compares_the_network_with_the_formulas():
    entry = demo_run()
    at = app_at("pages/baselines.py", runs=(entry,))
    assert not at.exception
    expected = baselines.baselines(entry.run)
    shown = at.dataframe[0].value
    assert set(shown["method"]) == {"network", "linear_regression", "rate_equation", "tattersall"}
    np.testing.assert_allclose(shown["rmse"], expected["rmse"])
    paired = at.dataframe[1].value
    assert list(paired["baseline"]) == ["linear_regression", "rate_equation", "tattersall"]
    assert (paired["n_folds"] == len(entry.run.folds)).all()
    assert "0.25" in texts(at)  # the smallest Wilcoxon p-value 3 folds allow
    assert "Read p (corrected t)" in texts(at)  # which of the two p-values, and why
    v = baselines.verdict(baselines.paired_comparison(entry.run))
    assert at.info[0].value == verdict_sentence(v, "Ueq")  # the page opens with it


def test_the_metric_selector_changes_the_chart():
    at = app_at("pages/baselines.py", runs=(demo_run(),))
    rmse = chart_spec(charts_on(at)[0])
    at.selectbox(key="baselines-metric").set_value("mae").run()
    (chart,) = charts_on(at)
    mae = chart_spec(chart)
    assert not at.exception
    assert mae["layer"][0]["encoding"]["x"]["field"] == "mae"
    assert rmse["layer"][0]["encoding"]["x"]["field"] == "rmse"
    pooled = {row["method"]: row["mae"] for row in chart_values(chart) if row["fold"] == "pooled"}
    expected = baselines.baselines(demo_run().run).query("fold == 'pooled'")
    assert pooled == pytest.approx(dict(zip(expected["method"], expected["mae"], strict=True)))


# -------------------------------------------------------------------------------------- predict

def first_patient():
    return data.demo_dataset().frame.iloc[0]


def type_patient(at, values) -> None:
    for name in data.STUDY_INPUTS:
        key = f"predict-{name}-mg/dL" if name in UREA_COLUMNS else f"predict-{name}"
        at.number_input(key=key).set_value(float(values[name]))
    at.button(key="predict-submit").click().run()


def test_predict_page_asks_for_a_run_first():
    at = app_at("pages/predict.py")
    assert not at.exception
    assert "No trained network yet" in texts(at)


def test_a_typed_patient_gets_the_ensembles_ueq():
    entry = demo_run()
    at = app_at("pages/predict.py", runs=(entry,))
    assert not at.exception
    row = first_patient()
    type_patient(at, row)
    assert not at.exception
    shown = at.dataframe[0].value
    expected = predict_sessions(entry.run, data.parse_patient(
        {c: row[c] for c in data.STUDY_INPUTS}))
    ueq = shown["ueq_network"].iloc[0]
    assert ueq == pytest.approx(expected["ueq_network"].iloc[0], rel=1e-12)
    assert np.isfinite(ueq) and row["Ueq"] / 10 < ueq < row["Ueq"] * 10
    assert at.metric[0].value == f"{ueq:.1f}" and "mg/dL" in at.metric[0].label
    # typed values change the prediction
    type_patient(at, row.replace(row["Upos"], row["Upos"] * 1.5))
    assert at.dataframe[0].value["ueq_network"].iloc[0] != ueq


def test_session_time_changes_the_dose_not_the_networks_ueq():
    at = app_at("pages/predict.py", runs=(demo_run(),))
    four = at.dataframe[0].value.iloc[0]
    at.number_input(key="predict-hours").set_value(3.0).run()
    three = at.dataframe[0].value.iloc[0]
    assert three["ueq_network"] == four["ueq_network"]
    assert three["ektv_network"] != four["ektv_network"]
    assert three["ueq_rate_equation"] != four["ueq_rate_equation"]


def test_urea_in_mmol_per_litre_in_and_out():
    at = app_at("pages/predict.py", runs=(demo_run(),))
    mg = at.dataframe[0].value.iloc[0]
    at.session_state["display_units"] = "mmol/L"  # the sidebar's switch
    at.run()
    assert not at.exception
    mmol = at.dataframe[0].value.iloc[0]
    # the defaults are re-expressed in mmol/L (to 2 decimals), the answer with them
    assert mmol["Upre"] == pytest.approx(mg["Upre"] / 6.006, abs=0.005)
    assert mmol["ueq_network"] * 6.006 == pytest.approx(mg["ueq_network"], rel=1e-3)
    assert "mmol/L" in at.metric[0].label


def test_a_bad_value_names_the_field():
    at = app_at("pages/predict.py", runs=(demo_run(),))
    at.number_input(key="predict-PP").set_value(7000.0)
    at.button(key="predict-submit").click().run()
    assert not at.exception
    assert "PP" in at.error[0].value and "plausible" in at.error[0].value
    assert not at.dataframe


def test_the_file_mode_says_which_columns_to_upload():
    at = app_at("pages/predict.py", runs=(demo_run(),))
    at.radio(key="predict-source").set_value("file").run()
    assert not at.exception
    assert "Upre, U120, Upos, PP, UF" in texts(at)


THREE = ["Upre", "Upos", "UF"]


@cache
def three_input_run() -> RunEntry:
    """A network trained on 3 of the 5 study inputs (no U120, no weight)."""
    ds = data.demo_dataset()
    run = train_run(ds.X(THREE), ds.y(), ArchSpec.study_e2e(), Protocol(folds=2, epochs=5),
                    features=THREE)
    return RunEntry("three-inputs", run_label(run, ds.name), run, ds.name)


def test_the_form_asks_only_for_the_networks_inputs():
    entry = three_input_run()
    at = app_at("pages/predict.py", runs=(entry,))
    assert not at.exception
    fields = {n.key: n.label for n in at.number_input if n.key != "predict-hours"}
    assert fields == {"predict-Upre-mg/dL": "pre-dialysis urea Upre (urea mg/dL)",
                      "predict-Upos-mg/dL": "post-dialysis urea Upos (urea mg/dL)",
                      "predict-UF": "ultrafiltration volume UF (L)"}
    row = first_patient()
    for key, name in zip(fields, THREE, strict=True):
        at.number_input(key=key).set_value(float(row[name]))
    at.button(key="predict-submit").click().run()
    assert not at.exception and not at.error
    shown = at.dataframe[0].value
    expected = predict_sessions(entry.run, data.parse_patient(
        {c: row[c] for c in THREE}, required=THREE))
    assert shown["ueq_network"].iloc[0] == pytest.approx(expected["ueq_network"].iloc[0],
                                                         rel=1e-12)
    assert list(shown.columns[:3]) == THREE
    assert "spktv" not in shown  # the formulas need the weight this network does without


def test_a_sessions_file_needs_only_the_networks_inputs():
    entry = three_input_run()
    at = app_at("pages/predict.py", runs=(entry,))
    at.radio(key="predict-source").set_value("file").run()
    content = b"Upre,Upos,UF,note\n150,50,2,a\n120,abc,1.5,b\n130,45,1,c\n"
    at.file_uploader(key="predict-upload").set_value(("visits.csv", content, "text/csv")).run()
    assert not at.exception and not at.error
    tables = [d.value for d in at.dataframe]
    skipped = next(t for t in tables if "reason" in t)
    assert skipped[["row", "column", "value"]].values.tolist() == [[3, "Upos", "abc"]]
    shown = next(t for t in tables if "ueq_network" in t)
    assert shown["row"].tolist() == [2, 4]
    expected = entry.run.ensemble_predictions(np.array([[150, 50, 2], [130, 45, 1]])).mean(axis=0)
    np.testing.assert_allclose(shown["ueq_network"], expected, rtol=1e-12)


def test_grid_headers_keep_the_unit_of_the_target_the_grid_predicted(fake_engine):
    at = app_at("pages/grid.py")
    at.session_state["features"] = ["Upre", "U120", "Upos", "PP"]
    at.session_state["target"] = "UF"  # ultrafiltration volume, in litres
    at.run()
    at.button(key="grid-run").click().run()
    wait_for_jobs(at)
    at.run()
    at.session_state["features"], at.session_state["target"] = data.STUDY_INPUTS, "Ueq"
    at.run()  # the columns changed after the grid ran: its errors are still in litres
    assert not at.exception
    headers = json.loads(at.dataframe[0].proto.columns)
    assert headers["cv_rmse"]["label"] == "√CV MSE (L)"
    assert headers["cv_mse_mean"]["label"] == "CV MSE ((L)²)"
    assert any("predicted UF" in c.value for c in at.caption)
    assert "(L)²" in json.dumps(chart_spec(charts_on(at)[0]), ensure_ascii=False)
    assert "run the grid again" in at.warning[0].value
    assert all(at.button(key=f"grid-train-{mode}").disabled for mode in ("raw", "zscore"))
