"""Keras 3's and Keras 2's BN moving-statistics updates (Protocol.bn_decay): the default is the
update bnapp always made, bit for bit; either one trains as the torch reference does."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp.engine import kernel
from bnapp.engine.kernel import epoch_orders
from bnapp.engine.model import BN_DECAYS, BN_MOMENTUM, ArchSpec, init_weights
from bnapp.engine.protocols import Protocol
from bnapp.engine.reference import train_reference
from bnapp.engine.train import make_splits, model_rngs, train_run

FEATURES = ["a", "b", "c"]
finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(old=finite, batch=finite)
def test_the_default_update_is_the_compiled_constants_formula_bit_for_bit(old, batch):
    """Before the setting the kernel computed old * BN_MOMENTUM + (1 - BN_MOMENTUM) * batch with
    compiled constants; the runtime decay must give the same float64, every time."""
    decay, keras2 = BN_DECAYS["keras3"]
    assert (decay, keras2) == kernel.KERAS3_BN_UPDATE
    before = old * BN_MOMENTUM + (1.0 - BN_MOMENTUM) * batch
    assert kernel._moving_average(old, batch, decay, keras2) == before


@settings(max_examples=100, deadline=None)
@given(old=finite, batch=finite)
def test_the_keras2_update_is_tf_keras_assign_sub(old, batch):
    # tf-keras: variable.assign_sub((variable - value) * decay), decay a float32 tensor
    decay32 = np.float32(1.0 - 0.99)
    assert BN_DECAYS["keras2"][0] == 0.009999999776482582  # float32's 0.01, measured in tf-keras
    assert kernel._moving_average(old, batch, *BN_DECAYS["keras2"]) == old - (old - batch) * float(decay32)


def test_protocol_keeps_its_dict_unless_keras2_is_chosen():
    assert "bn_decay" not in Protocol().to_dict()  # so every existing cache key stays the same
    p = Protocol(bn_decay="keras2")
    assert p.to_dict()["bn_decay"] == "keras2" and Protocol.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="bn_decay must be one of"):
        Protocol(bn_decay="keras1")


def _data():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(48, 3)) * [1.0, 4.0, 0.5] + [20.0, 3.0, -1.0]
    y = 1.0 + np.tanh(X[:, 0] - 20) + 0.2 * X[:, 1] + 0.1 * rng.normal(size=48)
    return X, y


SPECS = [ArchSpec(hidden=(4, 3), activation="sigmoid"),
         ArchSpec(hidden=(5,), activation="tanh", input_bn=True, hidden_bn=False)]


def _moving_stats(w):
    bns = ([w.input_bn] if w.input_bn is not None else []) + list(w.hidden_bn)
    return np.concatenate([np.concatenate([b.moving_mean, b.moving_var]) for b in bns])


@pytest.mark.parametrize("bn_decay", list(BN_DECAYS))
@pytest.mark.parametrize("spec", SPECS, ids=[s.label for s in SPECS])
def test_kernel_matches_the_torch_reference_with_either_update(spec, bn_decay):
    """Over 5 epochs the kernel's moving statistics agree with torch's for the same update to
    rounding, and differ from the other update's by its float32 decay (Keras 2 vs 3: ~1e-9)."""
    X, y = _data()
    protocol = Protocol(kind="kfold", folds=4, epochs=5, seed=3, bn_decay=bn_decay)
    run = train_run(X, y, spec, protocol, features=FEATURES)
    split = make_splits(protocol, len(X))[1]
    init_rng, order_seed = model_rngs(protocol, split)
    initial = init_weights(spec, X.shape[1], init_rng)
    ours = _moving_stats(run.folds[1].weights)
    refs = {}
    for name in BN_DECAYS:
        weights, _ = train_reference(spec, initial, X[split.train], y[split.train],
                                     epoch_orders(len(split.train), protocol.epochs, order_seed),
                                     bn_decay=name)
        refs[name] = _moving_stats(weights)
    scale = np.maximum(1.0, np.abs(ours))
    assert np.max(np.abs(ours - refs[bn_decay]) / scale) < 1e-13
    other = next(n for n in BN_DECAYS if n != bn_decay)
    assert np.max(np.abs(ours - refs[other]) / scale) > 1e-10
