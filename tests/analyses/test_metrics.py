"""Analyses against closed forms and independent computations, on small hand-made runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from bnapp.analyses.association import association, fit_lines
from bnapp.analyses.baselines import baselines, paired_comparison, quality
from bnapp.analyses.sensitivity import error_metrics, sensitivity
from bnapp.analyses.stages import bn_parameters, bn_stages, stage_quantiles, training_curves
from bnapp.engine.model import BN_EPSILON, ArchSpec, BNState, bn_inference, forward, init_weights
from bnapp.engine.results import INPUT, FoldResult, Layer, RunResult

FEATURES = ["a", "b", "c", "d"]


def make_run(spec: ArchSpec, n: int = 60, folds: int = 3, seed: int = 0) -> RunResult:
    """A run with random (untrained) weights and BN statistics, k-fold test rows."""
    rng = np.random.default_rng(seed)
    X = rng.normal([100.0, 5.0, 0.5, 70.0], [20.0, 1.0, 0.1, 10.0], size=(n, 4))
    y = 50 + 0.2 * X[:, 0] + rng.normal(0, 2, n)
    parts = np.array_split(rng.permutation(n), folds)
    results = []
    for k in range(folds):
        test = parts[k]
        train = np.concatenate(parts[:k] + parts[k + 1:])
        w = init_weights(spec, 4, rng)
        for bn in [w.input_bn, *w.hidden_bn]:
            if bn is not None:
                units = bn.gamma.size
                bn.gamma = rng.normal(0, 2, units)
                bn.beta = rng.normal(0, 0.5, units)
                bn.moving_mean = rng.normal(0, 1, units)
                bn.moving_var = rng.uniform(0.5, 2, units)
        if w.input_bn is not None and spec.input_mode == "raw":
            w.input_bn.moving_mean = X[train].mean(0)
            w.input_bn.moving_var = X[train].var(0)
        w.biases[-1] = np.array([y.mean()])
        w.kernels[-1] = w.kernels[-1] * 10
        results.append(FoldResult(k, train, np.empty(0, int), test, X[train].mean(0),
                                  X[train].std(0), w,
                                  history={"loss": np.linspace(5, 1, 7), "val_loss": np.ones(7),
                                           "input_gamma": rng.normal(size=(7, 4))}))
    return RunResult(spec, FEATURES, "y", X, y, results)


SPECS = [ArchSpec(), ArchSpec(input_mode="zscore"),
         ArchSpec(hidden=(3, 2), activation="tanh", input_bn=False, hidden_bn=False),
         ArchSpec(hidden=(5, 4), activation="relu")]


# --------------------------------------------------------------------------------------------
# metrics


finite = st.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 40), elements=finite), st.floats(0, 1e4))
def test_error_metrics_closed_forms(errors, intact):
    truth = np.linspace(1, 100, len(errors))
    m = error_metrics(errors, truth, intact)
    assert m["rmse"] ** 2 == pytest.approx(m["mse"], rel=1e-9, abs=1e-9)
    assert m["bias"] == abs(m["mean_error"])
    assert m["mse"] == pytest.approx(m["mean_error"] ** 2 + m["std_error"] ** 2, rel=1e-7, abs=1e-6)
    assert m["delta_mse"] == pytest.approx(m["mse"] - intact)
    assert m["mean_percent_error"] == pytest.approx(np.mean(100 * errors / truth), abs=1e-9)
    assert m["std_percent_error"] == pytest.approx(np.std(100 * errors / truth), abs=1e-7)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.integers(2, 40), elements=finite),
       arrays(np.float64, 40, elements=finite))
def test_quality_closed_forms(truth, noise):
    pred = truth + noise[: len(truth)]
    q = quality(truth, pred)
    e = pred - truth
    assert q["rmse"] == pytest.approx(np.sqrt(np.mean(e**2)))
    assert q["mae"] == pytest.approx(np.mean(np.abs(e)))
    assert q["bias"] == abs(q["mean_error"])
    if np.var(truth) > 1e-6:
        assert q["r2"] == pytest.approx(1 - np.sum(e**2) / np.sum((truth - truth.mean()) ** 2))
    assert quality(truth, truth)["rmse"] == 0


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
@pytest.mark.parametrize("layer", [INPUT, Layer.hidden(0)], ids=lambda layer: layer.stem)
def test_sensitivity_columns_and_invariants(spec, layer):
    run = make_run(spec)
    sens = sensitivity(run, layer, n_permutations=3, seed=1)
    units = 4 if layer == INPUT else spec.hidden[0]
    assert list(sens.columns) == ["layer", "unit", "fold", "mode", "gamma", "abs_gamma",
                                  "mean_error", "std_error", "bias", "mse", "rmse", "delta_mse",
                                  "mean_percent_error", "std_percent_error"]
    assert len(sens) == 3 * units * 3
    np.testing.assert_allclose(sens["rmse"] ** 2, sens["mse"])
    np.testing.assert_array_equal(sens["bias"], sens["mean_error"].abs())
    has_bn = spec.input_bn if layer == INPUT else spec.hidden_bn
    assert sens["gamma"].notna().all() == has_bn
    # the same call gives the same numbers (seeded permutations); another seed, other shuffles
    pd.testing.assert_frame_equal(sens, sensitivity(run, layer, n_permutations=3, seed=1))
    other = sensitivity(run, layer, n_permutations=3, seed=2)
    permuted = sens["mode"] == "permutation"
    pd.testing.assert_frame_equal(other[~permuted], sens[~permuted])
    assert not np.allclose(other.loc[permuted, "mse"], sens.loc[permuted, "mse"])


def test_ablating_a_disconnected_unit_changes_nothing():
    run = make_run(ArchSpec())
    for fold in run.folds:
        fold.weights.kernels[0][2, :] = 0.0  # input c feeds nothing
        fold.weights.kernels[1][1, :] = 0.0  # hidden node 2 feeds nothing
    for layer, unit in ((INPUT, "c"), (Layer.hidden(0), "node 2")):
        sens = sensitivity(run, layer, n_permutations=4)
        mine = sens[sens["unit"] == unit]
        np.testing.assert_allclose(mine["delta_mse"], 0.0, atol=1e-9)
        assert (sens[sens["unit"] != unit]["delta_mse"].abs() > 1e-9).any()


def test_input_modes_by_hand():
    run = make_run(ArchSpec(), folds=2)
    sens = sensitivity(run, INPUT, n_permutations=2, seed=7).set_index(["fold", "unit", "mode"])
    fold = run.folds[1]
    x, truth = run.X[fold.test_rows], run.y[fold.test_rows]
    intact = np.mean((forward(run.spec, fold.weights, x).output - truth) ** 2)
    zero = x.copy()
    zero[:, 0] = 0.0
    mean = x.copy()
    mean[:, 1] = fold.weights.input_bn.moving_mean[1]  # the BN output is then beta
    rng = np.random.default_rng([7, 1])
    perms = [rng.permutation(len(truth)) for _ in range(2)]
    shuffled = []
    for perm in perms:
        xp = x.copy()
        xp[:, 3] = x[perm, 3]
        shuffled.append(forward(run.spec, fold.weights, xp).output - truth)
    for (unit, mode), errors in (
        (("a", "zero"), forward(run.spec, fold.weights, zero).output - truth),
        (("b", "mean"), forward(run.spec, fold.weights, mean).output - truth),
        (("d", "permutation"), np.concatenate(shuffled)),
    ):
        row = sens.loc[(1, unit, mode)]
        assert row["mse"] == pytest.approx(np.mean(errors**2))
        assert row["delta_mse"] == pytest.approx(np.mean(errors**2) - intact)
        assert row["std_error"] == pytest.approx(np.std(errors))


def test_zscore_zero_ablation_is_the_training_mean():
    """Without an input BN, mean holds a z-scored input at its training mean: 0."""
    spec = ArchSpec(input_mode="zscore", input_bn=False)
    sens = sensitivity(make_run(spec), INPUT, ablations=("zero", "mean"))
    zero, mean = (sens[sens["mode"] == m].reset_index(drop=True) for m in ("zero", "mean"))
    np.testing.assert_allclose(zero["mse"], mean["mse"], rtol=1e-12)


def test_hidden_zero_and_mean_modes_by_hand():
    run = make_run(ArchSpec(hidden=(4,)), folds=2)
    sens = sensitivity(run, Layer.hidden(0), ablations=("zero", "mean")).set_index(
        ["fold", "unit", "mode"])
    fold = run.folds[0]
    x, truth = run.X[fold.test_rows], run.y[fold.test_rows]
    bn = fold.weights.hidden_bn[0]
    # zeroed kernel column and bias: the node's BN sees 0 on every row
    value_at_zero = bn_inference(BNState(*(a[[2]] for a in (bn.gamma, bn.beta, bn.moving_mean,
                                                              bn.moving_var))), np.zeros(1))[0]
    zero_pred = forward(run.spec, fold.weights, x, clamp={0: {2: value_at_zero}}).output
    assert sens.loc[(0, "node 3", "zero"), "mse"] == pytest.approx(np.mean((zero_pred - truth) ** 2))
    mean_pred = forward(run.spec, fold.weights, x, clamp={0: {1: bn.beta[1]}}).output
    assert sens.loc[(0, "node 2", "mean"), "mse"] == pytest.approx(np.mean((mean_pred - truth) ** 2))
    assert sens.loc[(0, "node 2", "mean"), "gamma"] == bn.gamma[1]


def test_bad_arguments_are_refused():
    run = make_run(ArchSpec())
    with pytest.raises(ValueError, match="ablation"):
        sensitivity(run, INPUT, ablations=("drop",))
    with pytest.raises(TypeError, match="layer"):
        sensitivity(run, "output")
    with pytest.raises(ValueError, match="no hidden layer 4"):
        sensitivity(run, Layer.hidden(3))


# --------------------------------------------------------------------------------------------
# stages and parameters


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
def test_bn_stages_follow_the_network(spec):
    run = make_run(spec)
    stages = bn_stages(run, INPUT)
    fold = run.folds[2]
    trace = forward(spec, fold.weights, fold.network_input(spec, run.X[fold.test_rows]))

    def stage(name, frame=stages):
        values = frame[(frame["fold"] == 2) & (frame["stage"] == name)]["value"].to_numpy()
        return values.reshape(len(fold.test_rows), -1)

    np.testing.assert_array_equal(stage("raw"), run.X[fold.test_rows])
    np.testing.assert_allclose(stage("zscore"),
                               (run.X[fold.test_rows] - fold.scaler_mean) / fold.scaler_std)
    expected = set(["raw", "zscore"] + (["bn_normalized", "bn_output"] if spec.input_bn else []))
    assert set(stages["stage"].unique()) == expected
    if spec.input_bn:
        np.testing.assert_allclose(stage("bn_output"), trace.input_bn_out)
    hidden = bn_stages(run, Layer.hidden(0))
    np.testing.assert_allclose(stage("raw", hidden), trace.hidden_pre_bn[0])
    if spec.hidden_bn:
        np.testing.assert_allclose(stage("bn_output", hidden), trace.hidden_bn_out[0])
        bn = fold.weights.hidden_bn[0]
        np.testing.assert_allclose(stage("bn_normalized", hidden),
                                   (trace.hidden_pre_bn[0] - bn.moving_mean)
                                   / np.sqrt(bn.moving_var + BN_EPSILON))


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.integers(1, 60), elements=st.floats(-1e4, 1e4)))
def test_stage_quantiles_match_numpy(values):
    stages = pd.DataFrame({"fold": np.arange(len(values)) % 2, "unit": "u", "stage": "raw",
                           "value": values})
    q = stage_quantiles(stages)
    pooled = q[q["fold"] == -1].iloc[0]
    assert pooled["n"] == len(values)
    np.testing.assert_allclose([pooled["q1"], pooled["median"], pooled["q3"]],
                               np.percentile(values, [25, 50, 75]))
    iqr = pooled["q3"] - pooled["q1"]
    assert values.min() == pooled["min"] <= pooled["whisker_low"] <= pooled["q1"] + 1e-9
    assert pooled["q3"] - 1e-9 <= pooled["whisker_high"] <= pooled["max"] == values.max()
    assert pooled["whisker_low"] >= pooled["q1"] - 1.5 * iqr - 1e-9
    assert q[q["fold"] >= 0]["n"].sum() == len(values)


def test_bn_parameters_per_fold_and_summary():
    run = make_run(ArchSpec(), folds=4)
    per_fold, summary = bn_parameters(run)
    assert list(per_fold.columns) == ["fold", "unit", "moving_mean", "moving_std", "beta", "gamma",
                                      "scaler_mean", "scaler_std"]
    gammas = np.array([f.weights.input_bn.gamma for f in run.folds])
    np.testing.assert_allclose(summary["gamma_mean"], gammas.mean(0))
    np.testing.assert_allclose(summary["gamma_sd"], gammas.std(0))
    np.testing.assert_allclose(bn_parameters(run, ddof=1)[1]["gamma_sd"], gammas.std(0, ddof=1))
    np.testing.assert_allclose(per_fold["moving_std"],
                               np.concatenate([f.weights.input_bn.moving_std for f in run.folds]))
    assert list(summary["unit"]) == FEATURES
    no_bn = make_run(ArchSpec(input_bn=False, hidden_bn=False))
    per_fold, summary = bn_parameters(no_bn)
    assert per_fold["gamma"].isna().all() and per_fold["scaler_mean"].notna().all()


def test_training_curves():
    run = make_run(ArchSpec(), folds=2)
    loss, gamma = training_curves(run)
    assert len(loss) == 14 and list(loss["epoch"][:7]) == list(range(1, 8))
    np.testing.assert_array_equal(loss["loss"][:7], run.folds[0].history["loss"])
    g = gamma[(gamma["fold"] == 1) & (gamma["epoch"] == 3)]
    np.testing.assert_array_equal(g["gamma"], run.folds[1].history["input_gamma"][2])
    assert list(g["unit"]) == FEATURES


# --------------------------------------------------------------------------------------------
# association


def _sens_table(gamma: np.ndarray, metric: np.ndarray) -> pd.DataFrame:
    folds, units = gamma.shape
    return pd.DataFrame({"layer": "input", "mode": "zero",
                         "unit": np.tile([f"u{k}" for k in range(units)], folds),
                         "fold": np.repeat(np.arange(folds), units),
                         "abs_gamma": gamma.ravel(), "bias": metric.ravel()})


def test_association_perfect_monotone_link():
    rng = np.random.default_rng(0)
    gamma = rng.uniform(0, 4, size=(8, 5))
    table = association(_sens_table(gamma, np.exp(gamma)), "bias", n_boot=200)
    est = table.set_index("statistic")
    assert est.loc["spearman", "estimate"] == pytest.approx(1.0)
    assert est.loc["kendall_tau", "estimate"] == pytest.approx(1.0)
    assert est.loc["spearman", "ci_low"] == pytest.approx(1.0)
    assert est.loc["pearson", "n"] == 40 and est.loc["kendall_tau", "n"] == 8
    assert list(table.columns) == ["layer", "mode", "metric", "statistic", "estimate", "ci_low",
                                   "ci_high", "n", "n_folds", "interval"]


def test_association_matches_scipy_and_resamples_folds():
    rng = np.random.default_rng(3)
    gamma = rng.uniform(0, 4, size=(10, 5))
    metric = gamma + rng.normal(0, 1.5, size=gamma.shape)
    table = association(_sens_table(gamma, metric), "bias", n_boot=500, seed=2).set_index(
        "statistic")
    assert table.loc["pearson", "estimate"] == pytest.approx(
        stats.pearsonr(gamma.ravel(), metric.ravel()).statistic)
    assert table.loc["spearman", "estimate"] == pytest.approx(
        stats.spearmanr(gamma.ravel(), metric.ravel()).statistic)
    taus = [stats.kendalltau(g, m).statistic for g, m in zip(gamma, metric, strict=True)]
    assert table.loc["kendall_tau", "estimate"] == pytest.approx(np.mean(taus))
    for s in ("pearson", "spearman", "kendall_tau"):
        assert table.loc[s, "ci_low"] < table.loc[s, "estimate"] < table.loc[s, "ci_high"]
    # two folds only: every resample is fold 0 twice, fold 1 twice, or both folds
    two = association(_sens_table(gamma[:2], metric[:2]), "bias", n_boot=300).set_index("statistic")
    possible = [stats.pearsonr(gamma[i], metric[i]).statistic for i in (0, 1)]
    possible.append(stats.pearsonr(gamma[:2].ravel(), metric[:2].ravel()).statistic)
    assert min(possible) - 1e-9 <= two.loc["pearson", "ci_low"]
    assert two.loc["pearson", "ci_high"] <= max(possible) + 1e-9


def test_fit_lines_linear_and_lowess():
    gamma = np.tile(np.linspace(0.5, 3, 10)[:, None], (1, 2)) + np.array([0, 0.1])
    lines = fit_lines(_sens_table(gamma, 2 + 3 * gamma), "bias")
    assert set(lines["kind"]) == {"linear", "lowess"}
    assert list(lines.columns) == ["layer", "mode", "unit", "kind", "x", "y"]
    np.testing.assert_allclose(lines["y"], 2 + 3 * lines["x"], atol=1e-9)
    assert set(lines["unit"]) == {"u0", "u1"}
    assert fit_lines(_sens_table(gamma, gamma).assign(abs_gamma=np.nan), "bias").empty


def test_lowess_is_the_studys_frac_06_on_curved_data():
    from statsmodels.nonparametric.smoothers_lowess import lowess

    rng = np.random.default_rng(5)
    gamma = rng.uniform(0.2, 4, size=(12, 1))
    metric = np.sin(2 * gamma) + rng.normal(0, 0.2, size=gamma.shape)
    lines = fit_lines(_sens_table(gamma, metric), "bias")
    curve = lines[lines["kind"] == "lowess"]
    for frac, same in ((0.6, True), (2 / 3, False), (0.3, False)):
        expected = lowess(metric.ravel(), gamma.ravel(), frac=frac, return_sorted=True)
        assert np.allclose(curve[["x", "y"]].to_numpy(), expected) is same, frac


# --------------------------------------------------------------------------------------------
# baselines


def test_baselines_ols_matches_statsmodels_and_pooled_rows():
    import statsmodels.api as sm

    run = make_run(ArchSpec())
    table = baselines(run)
    assert list(table.columns) == ["method", "fold", "n", "rmse", "mae", "bias", "mean_error", "r2"]
    assert set(table["method"]) == {"network", "linear_regression"}  # no kinetic inputs here
    fold = run.folds[1]
    fit = sm.OLS(run.y[fold.train_rows], sm.add_constant(run.X[fold.train_rows])).fit()
    pred = fit.predict(sm.add_constant(run.X[fold.test_rows]))
    row = table[(table["method"] == "linear_regression") & (table["fold"] == "1")].iloc[0]
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean((pred - run.y[fold.test_rows]) ** 2)))
    net = table[(table["method"] == "network") & (table["fold"] == "pooled")].iloc[0]
    assert net["n"] == sum(len(f.test_rows) for f in run.folds)
    errors = np.concatenate([run.test_predictions(f) - run.y[f.test_rows] for f in run.folds])
    assert net["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)))


def test_paired_comparison_corrected_t():
    run = make_run(ArchSpec(), folds=5)
    table = baselines(run)
    paired = paired_comparison(run, table).set_index("baseline")
    net = table[(table["method"] == "network") & (table["fold"] != "pooled")]["rmse"].to_numpy()
    ols = table[(table["method"] == "linear_regression")
                & (table["fold"] != "pooled")]["rmse"].to_numpy()
    d = net - ols
    n_test = np.mean([len(f.test_rows) for f in run.folds])
    n_train = np.mean([len(f.train_rows) for f in run.folds])
    t = d.mean() / np.sqrt((1 / 5 + n_test / n_train) * d.var(ddof=1))
    row = paired.loc["linear_regression"]
    assert row["difference"] == pytest.approx(d.mean())
    assert row["t_statistic"] == pytest.approx(t)
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), 4))
    assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert row["network_better_folds"] == int(np.sum(d < 0))
    # the 95 % interval is the corrected t one, wider than the naive paired-t one
    half = stats.t.ppf(0.975, 4) * np.sqrt((1 / 5 + n_test / n_train) * d.var(ddof=1))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    naive = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    assert row["ci_high"] - row["ci_low"] > 2 * naive


def test_clinical_formulas_only_score_a_run_that_predicts_ueq(seed_dir):
    """The formulas predict Ueq; scored against another target they would be meaningless."""
    import dataclasses

    from bnapp.engine.keras_import import load_keras_run

    run = load_keras_run(seed_dir, "e2e")
    assert {"rate_equation", "tattersall"} <= set(baselines(run)["method"])
    other = dataclasses.replace(run, target="U120", y=run.X[:, run.features.index("U120")])
    assert set(baselines(other)["method"]) == {"network", "linear_regression"}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(12, 200), p=st.integers(1, 5),
       scales=st.lists(st.floats(1e-3, 1e4), min_size=5, max_size=5),
       collinear=st.booleans())
def test_least_squares_from_the_normal_equations_matches_lstsq_on_the_rows(seed, n, p, scales,
                                                                          collinear):
    """The Gram-matrix OLS of the baselines gives lstsq's fit on the training rows, for inputs of
    any scale and (minimum-norm) for collinear ones."""
    from bnapp.analyses.baselines import LeastSquares

    rng = np.random.default_rng(seed)
    X = rng.normal(50.0, 1.0, (n, p)) * np.array(scales[:p])
    if collinear and p > 1:
        X[:, -1] = 2.0 * X[:, 0] - 3.0
    y = X @ rng.normal(size=p) + rng.normal(size=n)
    train = np.sort(rng.choice(n, size=max(p + 3, int(0.8 * n)), replace=False))
    x_new = rng.normal(50.0, 1.0, (7, p)) * np.array(scales[:p])
    if collinear and p > 1:
        x_new[:, -1] = 2.0 * x_new[:, 0] - 3.0
    ols = LeastSquares(X, y)
    design = np.column_stack([np.ones(len(train)), X[train]])
    coef, *_ = np.linalg.lstsq(design, y[train], rcond=None)
    expected = np.column_stack([np.ones(len(x_new)), x_new]) @ coef
    np.testing.assert_allclose(ols.predict(ols.fit(train), x_new), expected,
                               rtol=1e-7, atol=1e-7 * np.abs(y).max())
