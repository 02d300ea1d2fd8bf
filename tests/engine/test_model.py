"""The torch reference itself: Keras BN against torch's BatchNorm1d, and the parameter counts."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats
from torch import nn

from bnapp.engine.kernel import epoch_orders
from bnapp.engine.model import (
    BN_EPSILON,
    BN_MOMENTUM,
    ArchSpec,
    activate,
    dense_output,
    forward,
    forward_from,
    init_weights,
)
from bnapp.engine.reference import KerasBatchNorm1d, ReferenceNet

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


def _batches(min_rows=2):
    return st.integers(min_rows, 40).flatmap(
        lambda n: st.integers(1, 6).flatmap(lambda p: arrays(np.float64, (n, p), elements=finite))
    )


def _torch_bn(p: int) -> nn.BatchNorm1d:
    # torch's momentum weighs the new batch; Keras' weighs the old moving value
    return nn.BatchNorm1d(p, eps=BN_EPSILON, momentum=1 - BN_MOMENTUM, dtype=torch.float64)


@settings(max_examples=60, deadline=None)
@given(x=_batches(), gamma_seed=st.integers(0, 2**16))
def test_keras_bn_training_mode_matches_torch(x, gamma_seed):
    n, p = x.shape
    rng = np.random.default_rng(gamma_seed)
    gamma, beta = rng.normal(size=p), rng.normal(size=p)
    ours, ref = KerasBatchNorm1d(p), _torch_bn(p)
    with torch.no_grad():
        for m in (ours, ref):
            (m.gamma if m is ours else m.weight).copy_(torch.as_tensor(gamma))
            (m.beta if m is ours else m.bias).copy_(torch.as_tensor(beta))
    xt = torch.as_tensor(x)
    out_ours, out_ref = ours.train()(xt), ref.train()(xt)
    np.testing.assert_allclose(out_ours.detach(), out_ref.detach(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.moving_mean, ref.running_mean, rtol=1e-12, atol=1e-12)
    # torch's running variance takes the unbiased batch variance, Keras the biased one
    biased_from_torch = (ref.running_var - BN_MOMENTUM) * (n - 1) / n
    np.testing.assert_allclose(ours.moving_var - BN_MOMENTUM, biased_from_torch, rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(x=_batches(min_rows=1), seed=st.integers(0, 2**16))
def test_keras_bn_inference_mode_matches_torch(x, seed):
    p = x.shape[1]
    rng = np.random.default_rng(seed)
    stats = rng.normal(size=p), rng.uniform(0.01, 50, size=p), rng.normal(size=p), rng.normal(size=p)
    ours, ref = KerasBatchNorm1d(p), _torch_bn(p)
    with torch.no_grad():
        for t, a in zip((ours.moving_mean, ours.moving_var, ours.gamma, ours.beta), stats, strict=True):
            t.copy_(torch.as_tensor(a))
        for t, a in zip((ref.running_mean, ref.running_var, ref.weight, ref.bias), stats, strict=True):
            t.copy_(torch.as_tensor(a))
    xt = torch.as_tensor(x)
    np.testing.assert_allclose(ours.eval()(xt).detach(), ref.eval()(xt).detach(), rtol=1e-9, atol=1e-9)


def _torch_counts(spec: ArchSpec, p: int) -> tuple[int, int]:
    net = ReferenceNet(spec, p)
    trainable = sum(t.numel() for t in net.parameters())
    return trainable, sum(b.numel() for b in net.buffers())


def test_study_parameter_counts():
    e2e, norm = ArchSpec.study_e2e().param_counts(5), ArchSpec.study_zscore().param_counts(5)
    assert (e2e.trainable, e2e.non_trainable, e2e.total) == (65, 22, 87)
    assert (norm.trainable, norm.non_trainable, norm.total) == (85, 0, 85)
    assert _torch_counts(ArchSpec.study_e2e(), 5) == (65, 22)
    assert _torch_counts(ArchSpec.study_zscore(), 5) == (85, 0)


@settings(max_examples=30, deadline=None)
@given(hidden=st.lists(st.integers(1, 8), min_size=1, max_size=4), in_bn=st.booleans(),
       hid_bn=st.booleans(), p=st.integers(1, 7))
def test_param_counts_match_torch_modules(hidden, in_bn, hid_bn, p):
    spec = ArchSpec(hidden=tuple(hidden), input_bn=in_bn, hidden_bn=hid_bn)
    c = spec.param_counts(p)
    assert (c.trainable, c.non_trainable) == _torch_counts(spec, p)


# ------------------------------------------------------------------ initial weights, batch order

@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, 8), min_size=1, max_size=4), st.integers(1, 8), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_initial_weights_are_keras_glorot_uniform_with_fresh_bn(hidden, n_inputs, bn, seed):
    spec = ArchSpec(hidden=tuple(hidden), input_bn=bn, hidden_bn=bn)
    rng = np.random.default_rng(seed)
    draws = [init_weights(spec, n_inputs, rng) for _ in range(200)]
    for layer, kernel in enumerate(draws[0].kernels):
        fan_in, fan_out = kernel.shape
        # torch's xavier_uniform_ bound on the same (out, in) layer: sqrt(6 / (fan_in + fan_out))
        reference = nn.init.xavier_uniform_(torch.empty(fan_out, fan_in, dtype=torch.float64))
        bound = np.sqrt(6.0 / sum(nn.init._calculate_fan_in_and_fan_out(reference)))
        values = np.concatenate([w.kernels[layer].ravel() for w in draws])
        assert np.abs(values).max() <= bound
        # a wrong bound or distribution gives p ~ 0; a true one fails once in 1e8 draws
        assert stats.kstest(values, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-8
        assert not np.any(draws[0].biases[layer])
    fresh = ([draws[0].input_bn] if bn else []) + draws[0].hidden_bn
    assert len(fresh) == (1 + len(hidden) if bn else 0)
    for state in fresh:  # Keras: gamma 1, beta 0, moving mean 0, moving variance 1
        np.testing.assert_array_equal(np.stack([state.gamma, state.beta, state.moving_mean,
                                                state.moving_var]),
                                      np.stack([np.ones_like(state.gamma), np.zeros_like(state.gamma),
                                                np.zeros_like(state.gamma),
                                                np.ones_like(state.gamma)]))


@given(st.integers(2, 60), st.integers(2, 30), st.integers(0, 2**32 - 1))
def test_every_epoch_visits_every_row_once_in_a_new_order(n_rows, epochs, seed):
    orders = np.stack(list(epoch_orders(n_rows, epochs, seed)))
    assert orders.shape == (epochs, n_rows) and orders.dtype == np.int32
    assert (np.sort(orders, axis=1) == np.arange(n_rows)).all()
    if n_rows >= 12:  # 12! orders: two equal epochs in a row would be a missing shuffle
        assert all(not np.array_equal(a, b) for a, b in zip(orders[:-1], orders[1:], strict=True))


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**64 - 1))
def test_every_order_of_four_rows_is_equally_likely(seed):
    """The hand-written shuffle is uniform: 24,000 epochs of 4 rows hit the 24 orders alike
    (chi-square; a biased swap, e.g. k drawn from [0, n) instead of [0, j], gives p ~ 0)."""
    orders = np.stack(list(epoch_orders(4, 24_000, seed)))
    codes = orders @ np.array([64, 16, 4, 1])
    _, counts = np.unique(codes, return_counts=True)
    assert len(counts) == 24
    assert stats.chisquare(counts).pvalue > 1e-6


# ------------------------------------------------------------------ inference resumed mid-network

@settings(max_examples=40, deadline=None)
@given(hidden=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       activation=st.sampled_from(["sigmoid", "tanh", "relu"]), bn=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_forward_from_a_trace_gives_its_output_bit_for_bit(hidden, activation, bn, seed):
    """forward_from resumes at any layer from a trace's values with forward's own arithmetic, and
    dense_output stops at any layer's Dense output with it."""
    spec = ArchSpec(hidden=tuple(hidden), activation=activation, input_bn=bn, hidden_bn=bn)
    rng = np.random.default_rng(seed)
    weights = init_weights(spec, 4, rng)
    for state in ([weights.input_bn] if bn else []) + weights.hidden_bn:
        state.moving_mean, state.moving_var = rng.normal(size=(2, len(state.gamma)))
        state.moving_var = np.abs(state.moving_var) + 0.1
    trace = forward(spec, weights, rng.normal(2.0, 3.0, (50, 4)))
    np.testing.assert_array_equal(forward_from(spec, weights, trace.dense_input(), 0), trace.output)
    for layer in range(len(hidden)):
        h = activate(activation, trace.pre_activation(layer))
        np.testing.assert_array_equal(forward_from(spec, weights, h, layer + 1), trace.output)
        np.testing.assert_array_equal(dense_output(spec, weights, trace.network_input, layer),
                                      trace.hidden_pre_bn[layer])
