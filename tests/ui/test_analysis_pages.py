"""The BN stages, BN parameters and Sensitivity pages, driven through AppTest on small demo runs."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bnapp.analyses import layer_tables, verdict
from bnapp.engine.results import INPUT, Layer
from bnapp.intake import data
from bnapp.jobs import cache as result_cache
from bnapp.jobs.cached import cached_train
from bnapp.jobs.scheduler import job_manager
from bnapp.report import page_tables
from bnapp.ui import widgets
from bnapp.ui.state import RunEntry, run_label
from tests.apptest import SMALL, app_at, demo_run, texts

IMPORTANCE = "pages/importance.py"
STAGES, PARAMETERS, SENSITIVITY = ("pages/stages.py", "pages/parameters.py",
                                   "pages/sensitivity.py")


@cache
def zscore_bn_run() -> RunEntry:
    """The study's figure-4 network: the end-to-end one (input BN kept) fed z-scored inputs."""
    spec = page_tables.other_mode_spec(demo_run().run.spec)
    ds, cols = data.demo_dataset(), list(data.STUDY_INPUTS)
    run = cached_train(ds.X(cols), ds.y(), spec, SMALL, features=cols, target=data.STUDY_TARGET,
                       data_key=ds.fingerprint(), row_ids=ds.row_numbers, data_name=ds.name)
    key = result_cache.run_key(ds.fingerprint(), spec, SMALL, cols, data.STUDY_TARGET)
    return RunEntry(key, run_label(run, ds.name), run, ds.name)


def charts(at) -> list:
    return list(at.get("vega_lite_chart")) + list(at.get("arrow_vega_lite_chart"))


def chart_data(chart) -> pd.DataFrame:
    """Every inline data set of a drawn chart, stacked."""
    frames = [pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets]
    return pd.concat(frames, ignore_index=True)


def chart_title(chart) -> str:
    return json.dumps(json.loads(chart.proto.spec).get("title", ""), ensure_ascii=False)


def spec_text(chart) -> str:
    return json.dumps(json.loads(chart.proto.spec), ensure_ascii=False)


def table(at, index: int) -> pd.DataFrame:
    return at.dataframe[index].value


# ------------------------------------------------------------------------------- every page

@pytest.mark.parametrize("page", [STAGES, PARAMETERS, SENSITIVITY])
@pytest.mark.slow
def test_each_page_renders_on_the_demo_run(page):
    at = app_at(page, runs=(demo_run(),))
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert charts(at) and at.dataframe
    assert at.get("download_button")


@pytest.mark.parametrize("page", [STAGES, PARAMETERS, SENSITIVITY])
def test_before_a_run_each_page_says_to_train_first(page):
    at = app_at(page)
    assert not at.exception
    assert "Train one on the Train page" in texts(at)
    assert not charts(at) and not at.dataframe


# ------------------------------------------------------------------------------- BN stages

@pytest.mark.slow
def test_stages_fold_control_changes_the_boxes():
    at = app_at(STAGES, runs=(demo_run(),))
    assert set(chart_data(charts(at)[0])["fold"].dropna()) == {-1}
    at.radio(key="stages-folds").set_value("per_fold").run()
    assert set(chart_data(charts(at)[0])["fold"].dropna()) == {0, 1, 2}
    at.radio(key="stages-folds").set_value("single").run()
    at.selectbox(key="stages-fold").set_value(2).run()
    assert not at.exception
    assert set(chart_data(charts(at)[0])["fold"].dropna()) == {2}
    assert set(table(at, 0)["fold"]) == {2}


def test_stages_layer_selector_switches_to_the_hidden_nodes():
    at = app_at(STAGES, runs=(demo_run(),))
    assert set(chart_data(charts(at)[0])["unit"].dropna()) == set(data.STUDY_INPUTS)
    at.radio(key="stages-layer").set_value(Layer.hidden(0)).run()
    assert not at.exception
    assert set(chart_data(charts(at)[0])["unit"].dropna()) == {f"node {k}" for k in range(1, 7)}
    assert "Dense layer" in texts(at)  # the raw stage explained for a hidden layer


def test_stages_without_an_input_bn_says_so_and_shows_two_stages():
    at = app_at(STAGES, runs=(demo_run("zscore"),))
    assert not at.exception
    assert "no batch normalization" in at.warning[0].value
    assert set(table(at, 0)["stage"].astype(str)) == {"raw", "zscore"}
    assert at.radio(key="stages-layer").options == [
        "Input (no BN)", "Hidden layer 1 (6 nodes, no BN)", "Hidden layer 2 (6 nodes, no BN)"]


# ------------------------------------------------------------------------------- BN parameters

def test_parameter_table_has_one_row_per_input_with_the_weights_gamma():
    entry = demo_run()
    at = app_at(PARAMETERS, runs=(entry,))
    summary, per_fold = table(at, 0), table(at, 1)
    assert len(summary) == 5
    gammas = np.stack([f.weights.input_bn.gamma for f in entry.run.folds])  # (folds, inputs)
    for k, (shown, mean, sd) in enumerate(zip(summary["γ (scale)"], gammas.mean(0),
                                             gammas.std(0), strict=True)):
        shown_mean, shown_sd = (float(v) for v in shown.split(" ± "))
        assert shown_mean == pytest.approx(mean, abs=0.005), k
        assert shown_sd == pytest.approx(sd, abs=0.005), k
    np.testing.assert_allclose(per_fold["γ (scale)"].to_numpy().reshape(gammas.shape), gammas)
    assert "mutes it" in texts(at)


def test_parameter_sd_toggle_switches_to_the_sample_sd():
    entry = demo_run()
    at = app_at(PARAMETERS, runs=(entry,))
    at.toggle(key="params-sample-sd").set_value(True).run()
    gammas = np.stack([f.weights.input_bn.gamma for f in entry.run.folds])
    shown_sd = [float(v.split(" ± ")[1]) for v in table(at, 0)["γ (scale)"]]
    np.testing.assert_allclose(shown_sd, gammas.std(0, ddof=1), atol=0.005)
    assert "sample SD" in texts(at)


def test_parameter_layer_selector_shows_the_hidden_nodes():
    at = app_at(PARAMETERS, runs=(demo_run(),))
    assert not any("not the same units" in w.value for w in at.warning)  # inputs are aligned
    at.radio(key="params-layer").set_value(Layer.hidden(0)).run()
    assert not at.exception
    assert list(table(at, 0)["node"]) == [f"node {k}" for k in range(1, 7)]
    assert any("not the same units from fold to fold" in w.value for w in at.warning)


def test_a_beta_that_is_zero_is_said_in_words_not_charted():
    """Issue 27, item 9: the study's network trains its input BN's β to ~1e-16."""
    entry = demo_run()
    betas = np.abs([f.weights.input_bn.beta for f in entry.run.folds])
    gammas = np.abs([f.weights.input_bn.gamma for f in entry.run.folds])
    assert betas.max() <= 1e-9 * gammas.max()  # the premise: β is zero up to rounding
    at = app_at(PARAMETERS, runs=(entry,))
    assert "β is 0 in every fold up to rounding" in at.info[0].value
    assert (table(at, 0)["β (shift)"] == page_tables.BETA_ZERO).all()
    assert "β (shift, dimensionless)" not in spec_text(charts(at)[0])
    at.radio(key="params-layer").set_value(Layer.hidden(0)).run()  # its β moved: charted
    assert not at.info and "β (shift, dimensionless)" in spec_text(charts(at)[0])
    assert all(" ± " in cell for cell in table(at, 0)["β (shift)"])


def test_parameters_of_a_network_without_bn_say_so():
    at = app_at(PARAMETERS, runs=(demo_run("zscore"),))
    assert not at.exception
    assert "no batch normalization" in at.info[0].value
    assert (table(at, 0)["γ (scale)"] == page_tables.MISSING).all()


# ------------------------------------------------------------------------------- Sensitivity

def association_estimates(at) -> list[float]:
    frames = [df.value for df in at.dataframe if "statistic" in df.value.columns]
    return [float(v) for frame in frames for v in frame["estimate"]]


@pytest.mark.slow
def test_sensitivity_opens_on_the_fair_definition_and_switches_to_the_studys():
    at = app_at(SENSITIVITY, runs=(demo_run(),))
    assert at.radio(key="sens-mode").value == "permutation"
    assert at.selectbox(key="sens-metric").value == "delta_mse"
    assert "permuted" in chart_title(charts(at)[0])
    fair = association_estimates(at)
    at.selectbox(key="sens-metric").set_value("bias").run()
    at.radio(key="sens-mode").set_value("zero").run()
    study = association_estimates(at)
    assert not at.exception and len(fair) == len(study) == 3 and fair != study
    assert "the study's" in chart_title(charts(at)[0])
    assert "0 mg/dL" in texts(at) and "cancel" in texts(at)  # the study's choices, said so


@pytest.mark.slow
def test_sensitivity_and_importance_give_one_verdict_for_one_definition():
    entry = demo_run()
    sensitivity_page = app_at(SENSITIVITY, runs=(entry,))
    importance_page = app_at(IMPORTANCE, runs=(entry,))
    assert not sensitivity_page.exception and not importance_page.exception
    said = [m.value for m in sensitivity_page.markdown if m.value.startswith("**The answer:**")]
    assert len(said) == 1
    sentence = said[0].removeprefix("**The answer:** ")
    expected = verdict.ablation_report(entry.run, INPUT, "permutation")["verdict"]
    assert expected["definition"].iloc[0] == "ablation_permutation"
    assert widgets.escape_md(expected["sentence"].iloc[0]) == sentence
    assert sentence.startswith(widgets.escape_md("ΔMSE, permuted: "))
    answers = [m.value for m in importance_page.markdown if sentence in m.value]
    assert len(answers) == 1, "the Importance page prints the same sentence"
    assert "cohorts like this one" in texts(sensitivity_page)


def test_sensitivity_layer_selector_plots_the_hidden_nodes():
    at = app_at(SENSITIVITY, runs=(demo_run(),))
    assert set(chart_data(charts(at)[0])["unit"].dropna()) == set(data.STUDY_INPUTS)
    at.radio(key="sens-layer").set_value(Layer.hidden(0)).run()
    assert not at.exception
    assert {f"node {k}" for k in range(1, 7)} <= set(chart_data(charts(at)[0])["unit"].dropna())


@pytest.mark.slow
def test_raw_and_zscore_runs_are_shown_side_by_side():
    raw, zscored = demo_run(), zscore_bn_run()
    at = app_at(SENSITIVITY, runs=(zscored, raw))
    assert not at.exception
    assert [h.value for h in at.subheader] == ["Raw inputs", "Z-scored inputs"]
    side = [c for c in charts(at) if "raw against z-scored" in chart_title(c)]
    assert len(side) == 1  # one figure, both runs on shared axes
    assert len([df for df in at.dataframe if "statistic" in df.value.columns]) == 2
    assert not at.button  # the matching run is there: nothing to offer
    # the figure holds each run's own numbers, as the library compares them
    expected = layer_tables.compare_input_modes(raw.run, zscored.run, [INPUT],
                                              ablations=("zero",), n_permutations=10, n_boot=10)
    points = chart_data(side[0]).dropna(subset=["abs_gamma"])
    np.testing.assert_allclose(np.sort(points["abs_gamma"]),
                               np.sort(expected["sensitivity"]["abs_gamma"]))
    assert not np.allclose(*(np.sort(expected["sensitivity"].query(f"input_mode == '{m}'")["bias"])
                             for m in ("raw", "zscore")))


def test_without_a_matching_zscore_run_the_page_trains_one_and_then_shows_both():
    raw = demo_run()
    at = app_at(SENSITIVITY, runs=(demo_run("zscore"), raw))
    assert not at.exception
    # the study's z-score network is another network: not drawn beside this one
    assert "not shown beside this one: they are different networks" in texts(at)
    assert not at.subheader
    at.button(key="sens-train-other").click().run()
    assert not at.exception
    job = job_manager().get(at.session_state["job_ids"][-1])
    assert job.label == page_tables.other_mode_spec(raw.run.spec).label
    run = job.result(timeout=300)
    assert run.spec == page_tables.other_mode_spec(raw.run.spec)
    at.session_state["runs"] = {**at.session_state["runs"],
                                job.key: RunEntry(job.key, "z", run, raw.data_name)}
    at.session_state["active_run"] = raw.key
    at.run()
    assert not at.exception
    assert not at.button and len([df for df in at.dataframe
                                  if "statistic" in df.value.columns]) == 2


@pytest.mark.slow
def test_hidden_zero_and_mean_ablations_are_said_to_coincide_when_they_do():
    at = app_at(SENSITIVITY, runs=(demo_run(),))
    at.radio(key="sens-mode").set_value("zero").run()
    assert "give the same errors here" not in texts(at)  # the input layer: 0 is not the mean
    at.radio(key="sens-layer").set_value(Layer.hidden(0)).run()
    assert not at.exception
    assert "give the same errors here" in texts(at)  # input BN -> Dense -> BN: moving mean 0
    assert "unrelated units" in texts(at)  # no line per hidden node across folds
    at.radio(key="sens-mode").set_value("permutation").run()
    assert "give the same errors here" not in texts(at)


def test_the_cumulative_variant_is_offered_and_explained():
    at = app_at(SENSITIVITY, runs=(demo_run(),))
    assert "cumulatively" in texts(at)
    cumulative = [c for c in charts(at) if "zero_cumulative" in chart_title(c)]
    assert len(cumulative) == 1
    assert set(chart_data(cumulative[0])["unit"].dropna()) == {f"node {k}" for k in range(1, 7)}


def test_a_hidden_layer_without_bn_is_explained():
    at = app_at(SENSITIVITY, runs=(demo_run(), demo_run("zscore")))  # 1 and 2 hidden layers
    at.radio(key="sens-layer").set_value(Layer.hidden(1)).run()
    assert not at.exception
    assert "Hidden layer 2 (6 nodes, no BN): this network has no batch normalization" in texts(at)


def test_the_train_button_refuses_when_the_session_data_changed():
    at = app_at(SENSITIVITY, runs=(demo_run(),))
    at.session_state["features"] = ["Upre", "Upos", "PP", "UF"]  # columns changed on Data
    at.run()
    at.button(key="sens-train-other").click().run()
    assert not at.exception
    assert "not the ones this run was trained on" in at.warning[0].value
    assert at.session_state["job_ids"] == []  # no job
