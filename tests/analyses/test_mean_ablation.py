"""The `mean` ablation holds a unit at its BN moving mean (BN output = β), and why the hidden
`zero` and `mean` ablations coincide for the study's network."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bnapp.analyses.sensitivity import ablated_outputs, ablations_coincide, held_values, sensitivity
from bnapp.engine.model import INPUT_MODES, ArchSpec, bn_inference, forward
from bnapp.engine.results import INPUT, Layer
from tests.analyses.test_metrics import make_run

NO_PERMUTATIONS = np.empty((0, 0), dtype=int)


def _bn_arrays(elements, n=4):
    return arrays(np.float64, n, elements=elements)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # sigmoid of huge hidden values
@settings(max_examples=60, deadline=None)
@given(input_mode=st.sampled_from(INPUT_MODES), unit=st.integers(0, 3),
       seed=st.integers(0, 10_000),
       moving_mean=_bn_arrays(st.floats(-1e4, 1e4)),
       moving_var=_bn_arrays(st.floats(1e-6, 1e6)),
       gamma=_bn_arrays(st.floats(-10, 10)), beta=_bn_arrays(st.floats(-10, 10)))
def test_mean_mode_makes_the_input_bn_output_beta(input_mode, unit, seed, moving_mean, moving_var,
                                                  gamma, beta):
    run = make_run(ArchSpec(input_mode=input_mode), folds=2, seed=seed)
    fold = run.folds[seed % 2]
    bn = fold.weights.input_bn
    bn.moving_mean, bn.moving_var, bn.gamma, bn.beta = moving_mean, moving_var, gamma, beta
    x = fold.network_input(run.spec, run.X[fold.test_rows])
    held = held_values(run, fold, INPUT)
    np.testing.assert_allclose(bn_inference(bn, held)[unit], beta[unit], rtol=0, atol=1e-12)
    # the ablation resumed from the intact pass is a whole pass on the inputs with that unit held
    (out,) = ablated_outputs(run.spec, fold.weights, forward(run.spec, fold.weights, x), INPUT,
                             unit, "mean", held, NO_PERMUTATIONS)
    xa = x.copy()
    xa[:, unit] = held[unit]
    np.testing.assert_array_equal(out, forward(run.spec, fold.weights, xa).output)


@pytest.mark.parametrize("input_mode", INPUT_MODES)
def test_mean_mode_errors_are_those_of_a_zero_gamma(input_mode):
    """γ = 0 makes the BN output β on every row whatever the input: the same network outputs."""
    run = make_run(ArchSpec(input_mode=input_mode), folds=2, seed=3)
    rng = np.random.default_rng(5)
    for fold in run.folds:  # BN means away from the scaler's, so the two choices differ
        fold.weights.input_bn.moving_mean = rng.normal(0, 5, 4) + fold.network_input(
            run.spec, fold.scaler_mean)
    sens = sensitivity(run, INPUT, ablations=("mean",)).set_index(["fold", "unit"])
    for fold in run.folds:
        x, truth = fold.network_input(run.spec, run.X[fold.test_rows]), run.y[fold.test_rows]
        for u, name in enumerate(run.features):
            muted = fold.weights.copy()
            muted.input_bn.gamma[u] = 0.0
            mse = np.mean((forward(run.spec, muted, x).output - truth) ** 2)
            assert sens.loc[(fold.fold, name), "mse"] == pytest.approx(mse, rel=1e-12)


def test_without_an_input_bn_mean_mode_uses_the_training_mean():
    run = make_run(ArchSpec(input_bn=False, hidden_bn=False), folds=2)
    sens = sensitivity(run, INPUT, ablations=("mean",)).set_index(["fold", "unit"])
    fold = run.folds[1]
    x, truth = run.X[fold.test_rows].copy(), run.y[fold.test_rows]
    x[:, 2] = run.X[fold.train_rows, 2].mean()
    mse = np.mean((forward(run.spec, fold.weights, x).output - truth) ** 2)
    assert sens.loc[(1, "c"), "mse"] == pytest.approx(mse, rel=1e-12)


# ------------------------------------------------------------- hidden zero vs mean (audit item 5)

def test_hidden_zero_and_mean_coincide_exactly_when_the_moving_mean_is_zero():
    """Zeroed weights give a Dense output of 0, whose BN output is β - γ·mean/√(var+ε): β, as
    the mean mode holds it, exactly when the moving mean is 0."""
    run = make_run(ArchSpec(hidden=(4,)), folds=2)
    assert not ablations_coincide(sensitivity(run, Layer.hidden(0), ablations=("zero", "mean")))
    for fold in run.folds:
        fold.weights.hidden_bn[0].moving_mean[:] = 0.0
    sens = sensitivity(run, Layer.hidden(0), ablations=("zero", "mean"))
    assert ablations_coincide(sens)
    zero, mean = (sens[sens["mode"] == m]["mse"].to_numpy() for m in ("zero", "mean"))
    np.testing.assert_allclose(zero, mean, rtol=1e-12)


def test_ablations_coincide_needs_every_row():
    run = make_run(ArchSpec(hidden=(4,)), folds=2)
    for fold in run.folds:
        fold.weights.hidden_bn[0].moving_mean[:] = 0.0
    sens = sensitivity(run, Layer.hidden(0), ablations=("zero", "mean"))
    assert not ablations_coincide(sens.iloc[1:])  # one zero row missing
    assert not ablations_coincide(sens[sens["mode"] == "zero"])


@pytest.mark.parametrize("input_bn", [True, False])
@pytest.mark.slow
def test_training_leaves_the_first_hidden_bn_centred_only_after_an_input_bn(input_bn):
    """Why the study's hidden zero and mean ablations agree: with a BN on the inputs, the Dense
    bias and the input BN's β get no gradient (the hidden BN cancels any constant shift), so
    the Dense output of every batch has mean 0 and so has the hidden BN's moving mean."""
    from bnapp.engine import protocols, train
    rng = np.random.default_rng(0)
    X = rng.normal([150, 80, 50, 70, 2.5], [30, 20, 15, 15, 1], size=(90, 5))
    y = 0.6 * X[:, 2] + 0.1 * X[:, 0] + rng.normal(0, 1, 90)
    run = train.train_run(X, y, ArchSpec(input_bn=input_bn), protocols.Protocol(folds=3, epochs=15),
                          features=list("abcde"), target="y")
    largest = max(np.abs(f.weights.hidden_bn[0].moving_mean).max() for f in run.folds)
    coincide = ablations_coincide(sensitivity(run, Layer.hidden(0), ablations=("zero", "mean")))
    if input_bn:
        assert largest < 1e-9 and coincide
        assert max(np.abs(f.weights.input_bn.beta).max() for f in run.folds) < 1e-9
    else:
        assert largest > 1.0 and not coincide


def test_the_study_checkpoints_show_the_same(seed_dir):
    from bnapp.engine.keras_import import load_keras_run

    run = load_keras_run(seed_dir, "e2e")
    assert max(np.abs(f.weights.hidden_bn[0].moving_mean).max() for f in run.folds) < 1e-5
    assert ablations_coincide(sensitivity(run, Layer.hidden(0), ablations=("zero", "mean")))
    # the input layer is another matter: a raw input of 0 is far from its mean
    assert not ablations_coincide(sensitivity(run, INPUT, ablations=("zero", "mean")))
