"""Concordance of |γ| with each definition of importance: known rankings give known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bnapp.analyses import concordance
from bnapp.engine.model import ArchSpec
from tests.analyses.test_metrics import make_run


def table(importance_of_gamma, folds: int = 6, units: int = 5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for fold in range(folds):
        gamma = rng.permutation(units) + 0.5
        signs = rng.choice([-1.0, 1.0], units)  # concordance is about |γ|
        for u in range(units):
            rows.append({"layer": "input", "hidden_layer": pd.NA, "fold": fold, "unit": f"u{u}",
                         "definition": "shapley", "importance": importance_of_gamma(gamma[u]),
                         "gamma": signs[u] * gamma[u]})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("fn", "expected", "top"), [(lambda g: g**2, 1.0, 1.0),
                                                      (lambda g: -g, -1.0, 0.0)])
def test_monotone_importance_gives_perfect_agreement(fn, expected, top):
    out = concordance.concordance(table(fn), n_boot=200).set_index("statistic")
    for statistic in ("spearman", "kendall_tau"):
        assert out.loc[statistic, "estimate"] == pytest.approx(expected)
        assert out.loc[statistic, ["ci_low", "ci_high"]].tolist() == pytest.approx([expected] * 2)
    assert out.loc["top_unit_agreement", "estimate"] == top
    assert (out["n_folds"] == 6).all()


def test_per_fold_statistics_are_scipys_and_the_interval_covers_their_mean():
    from scipy import stats

    rng = np.random.default_rng(1)
    noisy = table(lambda g: g + rng.normal(0, 2), folds=8)
    out = concordance.concordance(noisy, n_boot=500).set_index("statistic")
    rhos = [stats.spearmanr(f["gamma"].abs(), f["importance"]).statistic
            for _, f in noisy.groupby("fold")]
    assert out.loc["spearman", "estimate"] == pytest.approx(np.mean(rhos))
    assert out.loc["spearman", "ci_low"] <= np.mean(rhos) <= out.loc["spearman", "ci_high"]


def test_report_covers_every_definition_and_layer_and_skips_layers_without_gamma():
    run = make_run(ArchSpec(), folds=3)
    report = concordance.importance_report(run, n_boot=100, n_replicates=0)
    imp = report["importance"]
    assert set(imp["definition"]) == set(concordance.DEFINITIONS)
    assert len(imp) == len(concordance.DEFINITIONS) * 3 * (4 + 6)
    conc = report["concordance"]
    assert len(conc) == 2 * len(concordance.DEFINITIONS) * len(concordance.STATISTICS)
    assert conc["estimate"].between(-1, 1).all()
    no_bn = make_run(ArchSpec(input_bn=False, hidden_bn=False), folds=2)
    assert concordance.importance_report(no_bn, n_boot=50, n_replicates=0)["concordance"].empty
