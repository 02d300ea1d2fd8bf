"""A known answer: ablation ranks a strong, a weak and an irrelevant input, in both input modes."""

from __future__ import annotations

import numpy as np
import pytest

from bnapp.analyses.sensitivity import ABLATIONS, sensitivity
from bnapp.engine.model import ArchSpec
from bnapp.engine.results import INPUT

FEATURES = ["strong", "weak", "none"]


def known_answer_data(seed: int = 0, n: int = 240):
    """Inputs on very different scales; the target ignores the third one."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 3))
    X = np.column_stack([1000 + 300 * z[:, 0], 0.05 + 0.01 * z[:, 1], 50 + 5 * z[:, 2]])
    y = 60 + 15 * z[:, 0] + 4 * z[:, 1] + rng.normal(0, 1, n)
    return X, y


@pytest.mark.parametrize("mode", ["raw", "zscore"])
def test_ablation_ranks_inputs_by_their_true_effect(mode):
    from bnapp.engine import protocols, train
    X, y = known_answer_data()
    run = train.train_run(X, y, ArchSpec(input_mode=mode), protocols.Protocol(folds=3, epochs=200),
                          features=FEATURES, target="y")
    sens = sensitivity(run, INPUT, n_permutations=5)
    for (fold, ablation), g in sens.groupby(["fold", "mode"]):
        ranking = list(g.sort_values("delta_mse", ascending=False)["unit"])
        assert ranking == FEATURES, (fold, ablation, g[["unit", "delta_mse"]])
    assert set(sens["mode"]) == set(ABLATIONS)
    # the irrelevant input costs almost nothing when held at its mean or shuffled
    gentle = sens[(sens["unit"] == "none") & (sens["mode"] != "zero")]
    strong = sens[(sens["unit"] == "strong") & (sens["mode"] != "zero")]
    assert gentle["delta_mse"].abs().max() < 0.05 * strong["delta_mse"].min()
