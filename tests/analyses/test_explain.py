"""Shapley values, integrated gradients and ICE against closed forms, brute force and torch."""

from __future__ import annotations

import itertools
from math import factorial

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp.analyses import explain, network_ops
from bnapp.analyses.explain import Op
from bnapp.engine.model import ACTIVATIONS, OUTPUT_ACTIVATIONS, ArchSpec, init_weights, predict
from bnapp.engine.reference import ReferenceNet
from bnapp.engine.results import Layer, network_layers
from tests.analyses.test_metrics import make_run


def random_network(spec: ArchSpec, p: int, rng: np.random.Generator):
    """Weights with random (not initial) biases and BN statistics."""
    w = init_weights(spec, p, rng)
    w.biases = [rng.normal(0, 0.5, b.shape) for b in w.biases]
    for bn in [w.input_bn, *w.hidden_bn]:
        if bn is not None:
            units = bn.gamma.size
            bn.gamma, bn.beta = rng.normal(0, 2, units), rng.normal(0, 0.5, units)
            bn.moving_mean, bn.moving_var = rng.normal(0, 1, units), rng.uniform(0.5, 2, units)
    return w


specs = st.builds(
    ArchSpec,
    hidden=st.lists(st.integers(1, 5), min_size=1, max_size=2).map(tuple),
    activation=st.sampled_from(ACTIVATIONS),
    output_activation=st.sampled_from(OUTPUT_ACTIVATIONS),
    input_bn=st.booleans(), hidden_bn=st.booleans())


# ------------------------------------------------------------------------ the ops and gradients

@settings(max_examples=40)
@given(spec=specs, p=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_ops_are_the_models_forward_and_gradients_are_torch_autograd(spec, p, seed):
    rng = np.random.default_rng(seed)
    w = random_network(spec, p, rng)
    x = rng.normal(0, 2, (7, p))
    ops = network_ops.network_ops(spec, w)
    out, grad = network_ops.gradients(ops, x)
    np.testing.assert_allclose(out, predict(spec, w, x), rtol=1e-12, atol=1e-12)
    net = ReferenceNet(spec, p).load_weights(w).eval()
    xt = torch.tensor(x, requires_grad=True)
    net(xt).sum().backward()
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("explained", [network_ops.run_ops, network_ops.gradients])
def test_an_unknown_activation_is_refused_not_passed_through(explained):
    ops = [network_ops.Op("dense", np.eye(2), np.zeros(2)), network_ops.Op("act", name="swish")]
    with pytest.raises(KeyError, match="swish"):
        explained(ops, np.ones((3, 2)))


# ------------------------------------------------------------------------------ known answers

def linear_network(w: np.ndarray, b: float) -> list[Op]:
    """No hidden layer, linear output: f(x) = x @ w + b."""
    return [Op("dense", w[:, None], np.array([b])), Op("act", name="linear")]


@settings(max_examples=30)
@given(p=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_linear_network_shapley_and_ig_are_closed_forms(p, seed):
    """Shapley = w_i (x_i - E[x_i]) (exact up to 10 inputs; permutation sampling above, also
    exact here: a linear model's marginal contributions do not depend on the coalition);
    IG = w_i (x_i - baseline_i)."""
    rng = np.random.default_rng(seed)
    w, b = rng.normal(0, 3, p), rng.normal()
    x, bg = rng.normal(50, 20, (9, p)), rng.normal(50, 20, (13, p))
    phi, base = explain.shapley_matrix(linear_network(w, b), x, bg,
                                       n_orders=5, rng=np.random.default_rng(seed))
    np.testing.assert_allclose(phi, w * (x - bg.mean(0)), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(base, bg.mean(0) @ w + b, rtol=1e-12)
    baseline = rng.normal(0, 10, p)
    ig, gap = explain.integrated_gradients_matrix(linear_network(w, b), x, baseline)
    np.testing.assert_allclose(ig, w * (x - baseline), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gap, 0, atol=1e-9)


def brute_force_shapley(f, x, bg):
    """Independent of the library: every subset by itertools, the Shapley weight formula, the
    model f evaluated on each subset's hybrid rows (x on the subset, background elsewhere)."""
    p = len(x)
    phi = np.zeros(p)
    for j in range(p):
        others = [k for k in range(p) if k != j]
        for size in range(p):
            for subset in itertools.combinations(others, size):
                with_j, without = bg.copy(), bg.copy()
                with_j[:, [*subset, j]] = x[[*subset, j]]
                without[:, list(subset)] = x[list(subset)]
                weight = factorial(size) * factorial(p - size - 1) / factorial(p)
                phi[j] += weight * (f(with_j).mean() - f(without).mean())
    return phi


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("output_activation", OUTPUT_ACTIVATIONS)
def test_exact_shapley_equals_brute_force_on_four_inputs(activation, output_activation):
    spec = ArchSpec(hidden=(5, 3), activation=activation, output_activation=output_activation)
    rng = np.random.default_rng(len(activation) + len(output_activation))
    w = random_network(spec, 4, rng)
    w.biases[-1] = np.array([1.0])  # keeps a ReLU output mostly on
    x, bg = rng.normal(0, 1.5, (3, 4)), rng.normal(0, 1.5, (11, 4))
    phi, _ = explain.shapley_matrix(network_ops.network_ops(spec, w), x, bg)
    for row in range(3):
        np.testing.assert_allclose(phi[row], brute_force_shapley(lambda h: predict(spec, w, h), x[row], bg),
                                   rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------- properties

@settings(max_examples=40)
@given(spec=specs, p=st.sampled_from([1, 3, 5, 11]), seed=st.integers(0, 2**32 - 1))
def test_efficiency_and_completeness_on_random_networks(spec, p, seed):
    """base + sum(Shapley) = f(x) to 1e-9 (exact below 11 inputs, sampled at 11), and
    sum(IG) = f(x) - f(baseline) to 1e-3 at the default 64 steps, for every grid activation,
    over the input layer and over each hidden layer's nodes."""
    rng = np.random.default_rng(seed)
    w = random_network(spec, p, rng)
    x, bg = rng.normal(0, 2, (6, p)), rng.normal(0, 2, (20, p))
    ops = network_ops.network_ops(spec, w)
    for layer in network_layers(spec):
        head, tail = network_ops.split_ops(ops, layer)
        ux, ub = network_ops.run_ops(head, x), network_ops.run_ops(head, bg)
        phi, base = explain.shapley_matrix(tail, ux, ub, n_orders=3, rng=rng)
        np.testing.assert_allclose(base + phi.sum(1), predict(spec, w, x), rtol=0, atol=1e-9)
        _, gap = explain.integrated_gradients_matrix(tail, ux, ub.mean(0))
        assert np.abs(gap).max() <= 1e-3


def test_ig_matches_a_fine_riemann_sum_on_a_smooth_network():
    spec = ArchSpec(hidden=(4,), activation="tanh")
    rng = np.random.default_rng(3)
    w = random_network(spec, 3, rng)
    ops = network_ops.network_ops(spec, w)
    x, baseline = rng.normal(0, 2, (4, 3)), rng.normal(0, 1, 3)
    ig, _ = explain.integrated_gradients_matrix(ops, x, baseline)
    alphas = (np.arange(20_000) + 0.5) / 20_000
    for row in range(4):
        path = baseline + alphas[:, None] * (x[row] - baseline)
        riemann = (x[row] - baseline) * network_ops.gradients(ops, path)[1].mean(0)
        np.testing.assert_allclose(ig[row], riemann, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------------- on a run

@pytest.mark.parametrize("spec", [ArchSpec(), ArchSpec(input_mode="zscore", activation="relu")])
def test_run_tables_explain_each_folds_test_predictions(spec):
    run = make_run(spec, folds=3)
    values, rows = explain.shapley_values(run)
    stored = np.concatenate([f.test_predictions for f in run.folds])
    np.testing.assert_allclose(rows["prediction"], stored, rtol=1e-12)
    total = values.groupby(["fold", "row"], sort=False)["value"].sum().to_numpy()
    np.testing.assert_allclose(rows["base_value"] + total, stored, rtol=0, atol=1e-9)
    ig, ig_rows = explain.integrated_gradients(run)
    assert np.abs(ig_rows["completeness_gap"]).max() <= 1e-3
    assert len(ig) == len(values) == len(stored) * len(run.features)
    hidden, hidden_rows = explain.shapley_values(run, Layer.hidden(0))
    assert set(hidden["unit"]) == set(run.unit_names(Layer.hidden(0)))
    np.testing.assert_allclose(hidden_rows["prediction"], stored, rtol=1e-12)


def test_zscore_shapley_equals_shapley_on_raw_values():
    """z-scoring is a per-input bijection: interventional Shapley values do not change."""
    run = make_run(ArchSpec(input_mode="zscore"), folds=2)
    fold = run.folds[0]
    raw_x, raw_bg = run.X[fold.test_rows], run.X[explain.background_rows(fold)]

    def f_raw(x):
        return run.fold_predictions(fold, x)

    brute = [brute_force_shapley(f_raw, raw_x[r], raw_bg) for r in range(3)]
    values, _ = explain.shapley_values(run)
    ours = values[values["fold"] == fold.fold]["value"].to_numpy().reshape(-1, 4)[:3]
    np.testing.assert_allclose(ours, brute, rtol=1e-9, atol=1e-10)


def test_ice_and_pdp_and_what_if():
    run = make_run(ArchSpec(), folds=3)
    ice, pdp = explain.ice_pdp(run, n_rows=7, n_grid=5)
    mean_ice = ice.groupby(["unit", "value"], sort=False)["prediction"].mean().to_numpy()
    np.testing.assert_allclose(pdp["pdp"], mean_ice, rtol=1e-12)
    assert (pdp["pdp_low"] <= pdp["pdp"] + 1e-12).all() and (pdp["pdp"] <= pdp["pdp_high"] + 1e-12).all()
    session = run.X[4].copy()
    view = explain.what_if(run, session, n_grid=5)
    np.testing.assert_allclose(view.predictions, run.ensemble_predictions(session[None])[:, 0])
    assert view.base_value + view.shapley["contribution"].sum() == pytest.approx(view.prediction,
                                                                                abs=1e-9)
    # the ICE curve of an input at the session's own value is the session's prediction
    grid = explain.ice_grid(run, 5)
    moved = session.copy()
    moved[0] = grid[2, 0]
    curve = view.ice[view.ice["unit"] == run.features[0]]
    assert curve["prediction"].iloc[2] == pytest.approx(run.ensemble_predictions(moved[None]).mean())


def test_max_rows_explains_a_seeded_sample_of_each_folds_test_rows():
    run = make_run(ArchSpec(), n=90, folds=3)
    values, rows = explain.shapley_values(run, max_rows=7, seed=4)
    again, _ = explain.shapley_values(run, max_rows=7, seed=4)
    assert rows.groupby("fold").size().tolist() == [7, 7, 7]
    for fold in run.folds:
        assert set(rows[rows["fold"] == fold.fold]["row"]) <= set(fold.test_rows)
    pd.testing.assert_frame_equal(values, again)
    ig, _ = explain.integrated_gradients(run, max_rows=7, seed=4)
    assert ig[["fold", "row"]].equals(values[["fold", "row"]])
