"""Display tables and texts of the analysis pages (bnapp.report.page_tables), against
independent references."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bnapp.analyses import association, sensitivity, stages
from bnapp.engine.model import ArchSpec
from bnapp.engine.results import INPUT, Layer, network_layers
from bnapp.report import page_tables
from tests.apptest import demo_run

FEATURES = ["Upre", "U120", "Upos", "PP", "UF"]


def test_mean_sd_prints_the_study_table_2_style():
    assert page_tables.mean_sd(148.891, 3.2712) == "148.89 ± 3.27"
    assert page_tables.mean_sd(1.2e-7, 3.4e-8) == "1.2e-07 ± 3.4e-08"  # the study's β
    assert page_tables.mean_sd(0.0, 0.0) == "0.00 ± 0.00"
    assert page_tables.mean_sd(np.nan, np.nan) == page_tables.MISSING
    assert page_tables.mean_sd(2.5, np.nan) == "2.50"  # one fold: no SD


@given(st.floats(-1e6, 1e6), st.floats(0, 1e4))
def test_mean_sd_reads_back_as_the_numbers(mean, sd):
    text_mean, text_sd = page_tables.mean_sd(mean, sd).split(" ± ")
    for value, text in ((mean, text_mean), (sd, text_sd)):
        assert float(text) == pytest.approx(value, abs=0.005, rel=0.05)


def test_parameter_table_is_the_fold_mean_and_population_sd_of_the_weights():
    run = demo_run().run
    _, summary = stages.bn_parameters(run)
    table = page_tables.parameter_table(summary, INPUT)
    assert list(table["input"]) == ["Upre (mg/dL)", "U120 (mg/dL)", "Upos (mg/dL)", "PP (kg)",
                                    "UF (L)"]
    gammas = np.stack([f.weights.input_bn.gamma for f in run.folds])
    stds = np.stack([np.sqrt(f.weights.input_bn.moving_var) for f in run.folds])
    assert list(table["γ (scale)"]) == [page_tables.mean_sd(m, s) for m, s in
                                        zip(gammas.mean(0), gammas.std(0), strict=True)]
    assert list(table["BN moving std"]) == [page_tables.mean_sd(m, s) for m, s in
                                            zip(stds.mean(0), stds.std(0), strict=True)]


def test_hidden_layer_tables_name_nodes_and_the_dense_output_statistics():
    run = demo_run().run
    per_fold, summary = stages.bn_parameters(run, Layer.hidden(0))
    table = page_tables.parameter_table(summary, Layer.hidden(0))
    assert list(table["node"]) == [f"node {k}" for k in range(1, 7)]
    assert "Dense output mean (training rows)" in table.columns
    folds = page_tables.per_fold_table(per_fold, Layer.hidden(0))
    assert len(folds) == 6 * len(run.folds)
    np.testing.assert_array_equal(folds["γ (scale)"].to_numpy()[:6],
                                  run.folds[0].weights.hidden_bn[0].gamma)


def test_a_layer_without_bn_shows_dashes():
    run = demo_run("zscore").run
    _, summary = stages.bn_parameters(run)
    table = page_tables.parameter_table(summary, INPUT)
    assert (table["γ (scale)"] == page_tables.MISSING).all()
    assert (table["z-score scaler mean"] != page_tables.MISSING).all()


def test_layer_choices_and_titles():
    deep = ArchSpec(hidden=(4, 3), hidden_bn=False, input_bn=False, input_mode="zscore")
    assert network_layers(deep) == [INPUT, Layer.hidden(0), Layer.hidden(1)]
    assert page_tables.layer_title(deep, Layer.hidden(1)) == "Hidden layer 2 (3 nodes, no BN)"
    assert page_tables.layer_title(deep, INPUT) == "Input (no BN)"
    study = ArchSpec.study_e2e()
    assert page_tables.layer_title(study, Layer.hidden(0)) == "BN after hidden layer 1 (6 nodes)"
    assert page_tables.has_bn(study, INPUT) and not page_tables.has_bn(deep, Layer.hidden(0))


def _quantiles() -> pd.DataFrame:
    return stages.stage_quantiles(stages.bn_stages(demo_run().run))


def test_stage_view_picks_pooled_each_or_one_fold():
    q = _quantiles()
    pooled, per = page_tables.stage_view(q, "pooled")
    assert set(pooled["fold"]) == {-1} and not per
    each, per = page_tables.stage_view(q, "per_fold")
    assert set(each["fold"]) == {0, 1, 2} and per
    one, per = page_tables.stage_view(q, 1)
    assert set(one["fold"]) == {1} and per
    assert len(one) == len(pooled)  # one box per unit and stage either way
    with pytest.raises(ValueError, match="fold 7"):
        page_tables.stage_view(q, 7)


# ------------------------------------------------------------------------------- comparison

def _fake_run(spec: ArchSpec, X: np.ndarray, protocol: dict | None = None, features=FEATURES):
    return SimpleNamespace(spec=spec, X=X, y=X[:, 0] * 0.5, features=list(features),
                           target="Ueq", protocol=protocol or {"folds": 3})


def test_comparison_is_the_other_input_mode_on_the_same_data():
    X = np.random.default_rng(0).normal(size=(20, 5))
    raw = _fake_run(ArchSpec.study_e2e(), X)
    same_net_z = _fake_run(page_tables.other_mode_spec(raw.spec), X)
    other_net_z = _fake_run(ArchSpec.study_zscore(), X)
    other_data = _fake_run(page_tables.other_mode_spec(raw.spec), X + 1.0)
    other_cols = _fake_run(page_tables.other_mode_spec(raw.spec), X, features=FEATURES[::-1])
    raw_again = _fake_run(replace(raw.spec, hidden=(3,)), X)
    assert page_tables.comparison_key(raw, {"a": other_net_z, "b": same_net_z}) == "b"
    assert page_tables.comparison_key(raw, {"b": same_net_z, "a": other_net_z}) == "b"
    assert page_tables.comparison_key(raw, {"a": other_net_z}) == "a"
    candidates = {"d": other_data, "c": other_cols, "r": raw_again}
    assert page_tables.comparison_key(raw, candidates) is None
    assert page_tables.comparison_key(same_net_z, {"x": raw}) == "x"


def test_comparison_prefers_the_same_protocol_then_the_latest():
    X = np.ones((10, 5))
    raw = _fake_run(ArchSpec.study_e2e(), X, {"folds": 3})
    z = page_tables.other_mode_spec(raw.spec)
    runs = {"other": _fake_run(z, X, {"folds": 5}), "same": _fake_run(z, X, {"folds": 3}),
            "later": _fake_run(z, X, {"folds": 10})}
    assert page_tables.comparison_key(raw, runs) == "same"
    del runs["same"]
    assert page_tables.comparison_key(raw, runs) == "later"


def test_other_mode_spec_keeps_the_network():
    spec = ArchSpec.study_e2e()
    z = page_tables.other_mode_spec(spec)
    assert z.input_mode == "zscore" and z.input_bn and z.hidden == spec.hidden
    assert page_tables.other_mode_spec(z) == spec


# ------------------------------------------------------------------------------- association

def test_association_table_is_readable_and_keeps_the_numbers():
    sens = sensitivity.sensitivity(demo_run().run, INPUT, ablations=("zero", "mean"))
    assoc = association.association(sens, "rmse", n_boot=200)
    table = page_tables.association_table(assoc, "mean")
    expected = assoc[assoc["mode"] == "mean"].reset_index(drop=True)
    assert list(table["statistic"]) == list(page_tables.STATISTIC_TITLES.values())
    np.testing.assert_allclose(table["estimate"], expected["estimate"], atol=5e-4)
    lo, hi = table["95% interval"][1].split(" to ")
    assert float(lo) == pytest.approx(expected.at[1, "ci_low"], abs=0.005)
    assert float(hi) == pytest.approx(expected.at[1, "ci_high"], abs=0.005)
    assert (table["folds"] == 3).all()


def test_caveats_name_only_those_that_apply():
    study = page_tables.association_caveats("bias", "zero", INPUT)
    assert "cancel" in study and "0 mg/dL" in study
    fair = page_tables.association_caveats("delta_mse", "permutation", INPUT)
    assert "cancel" not in fair and "0 mg/dL" not in fair and "in general" in fair
    assert "0 mg/dL" not in page_tables.association_caveats("bias", "zero", INPUT, "zscore")
    assert "0 mg/dL" not in page_tables.association_caveats("bias", "zero", Layer.hidden(0))


# ------------------------------------------------------------------------------- zero vs mean

def _hidden_note(spec: ArchSpec, moving_mean: float):
    from tests.analyses.test_metrics import make_run

    run = make_run(spec, folds=2)
    for fold in run.folds:
        fold.weights.hidden_bn[0].moving_mean[:] = moving_mean
    sens = sensitivity.sensitivity(run, Layer.hidden(0), ablations=("zero", "mean"))
    per_fold, _ = stages.bn_parameters(run, Layer.hidden(0))
    return page_tables.zero_mean_note(sens, per_fold, run.spec, Layer.hidden(0))


def test_the_zero_mean_note_appears_only_when_the_errors_coincide():
    assert _hidden_note(ArchSpec(hidden=(4,)), 0.7) is None
    note = _hidden_note(ArchSpec(hidden=(4,)), 3e-12)
    assert "give the same errors here" in note and "3e-12" in note
    assert "input BN's β" in note  # why the moving mean is 0 after an input BN
    assert note.endswith(".") and ". " not in note  # one sentence
    plain = _hidden_note(ArchSpec(hidden=(4,), input_bn=False), 0.0)
    assert "give the same errors here" in plain and "input BN" not in plain


@pytest.mark.parametrize("n_folds", [3, 5, 10])
def test_paired_reading_names_the_corrected_t_and_the_wilcoxon_floor(n_folds):
    from scipy import stats

    text = page_tables.paired_reading(n_folds)
    assert "Read p (corrected t)" in text and "not corrected for the overlap" in text
    # the floor it quotes is scipy's exact two-sided Wilcoxon p when every fold goes one way
    floor = stats.wilcoxon(-np.arange(1.0, n_folds + 1), method="exact").pvalue
    assert f"cannot go below {floor:.3g} whatever" in text
