"""The verdict on "is |γ| importance?" on tables whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bnapp.analyses import cohort_intervals as ci
from bnapp.analyses.concordance import concordance
from bnapp.analyses.sensitivity import sensitivity
from bnapp.analyses.verdict import answer, label, sensitivity_importance, verdict
from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol
from bnapp.engine.results import INPUT, Layer
from bnapp.engine.train import train_run

UNITS = list("abcde")


def _table(link, folds: int = 10, seed: int = 0, definition: str = "shapley") -> pd.DataFrame:
    """Importance = link(|γ|, noise) for every fold and unit of an input layer."""
    rng = np.random.default_rng(seed)
    gamma = rng.uniform(0.2, 3.0, size=(folds, len(UNITS)))
    importance = link(gamma, rng.normal(size=gamma.shape))
    return pd.DataFrame({"layer": "input", "hidden_layer": pd.array([pd.NA] * gamma.size,
                                                                    dtype="Int64"),
                         "fold": np.repeat(np.arange(folds), len(UNITS)),
                         "unit": np.tile(UNITS, folds), "definition": definition,
                         "importance": importance.ravel(), "gamma": gamma.ravel()})


def _verdict(table: pd.DataFrame) -> pd.Series:
    return verdict(concordance(table), table).iloc[0]


@pytest.mark.parametrize(("link", "expected"), [
    (lambda g, e: g**2 + 0.1 * e, "yes, clearly"),
    (lambda g, e: -g + 0.1 * e, "inverse"),
    (lambda g, e: e, "compatible with no association"),
])
def test_the_answer_is_the_one_built_in(link, expected):
    row = _verdict(_table(link))
    assert row["answer"] == expected
    assert row["sentence"].startswith(f"mean |Shapley value|: {expected} (ρ ")


def test_a_weak_but_sure_link_is_called_weak():
    row = _verdict(_table(lambda g, e: g + 2.5 * e, folds=200))
    assert 0 < row["ci_low"] and row["estimate"] < 0.5 and row["answer"] == "yes, weakly"


def test_the_verdict_carries_the_cohort_interval_and_its_words():
    def link(g, e):
        return g + 0.3 * e

    table = _table(link)
    replicated = ci.Replicated([_table(link, seed=s) for s in range(1, 30)], "cohorts like it")
    row = verdict(concordance(table, cohort=replicated), table).iloc[0]
    rhos = [concordance(t).set_index("statistic").loc["spearman", "estimate"]
            for t in replicated.items]
    half = stats.t.ppf(0.975, len(rhos) - 1) * np.std(rhos, ddof=1)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        (row["estimate"] - half, min(row["estimate"] + half, 1.0)))
    assert row["interval"] == "cohorts like it" and row["answer"] == "yes, clearly"


def test_answer_thresholds_and_missing_intervals():
    assert answer(0.6, 0.1, 0.9) == "yes, clearly"
    assert answer(0.3, 0.1, 0.5) == "yes, weakly"
    assert answer(-0.4, -0.7, -0.1) == "inverse"
    assert answer(0.4, -0.1, 0.8) == "compatible with no association"
    assert answer(0.4, np.nan, np.nan) == "not enough folds to say"


def test_a_link_between_inputs_only_is_said_to_reverse_within_them():
    # each input has its own level of γ and of importance (rising together), but within an
    # input, across folds, more γ goes with less importance
    def link(gamma, noise):
        level = np.arange(len(UNITS)) * 3.0
        return 2 * level - (gamma - gamma.mean(0)) + 0.01 * noise

    table = _table(link)
    table["gamma"] += np.tile(np.arange(len(UNITS)) * 3.0, 10)
    row = verdict(concordance(table), table).iloc[0]
    assert row["pooled"] > 0.5 and row["within_unit"] < -0.5
    assert "within each input, across folds, it falls" in row["sign_note"]
    agreeing = _table(lambda g, e: g + 0.1 * e)
    assert verdict(concordance(agreeing), agreeing).iloc[0]["sign_note"] == ""


def test_hidden_nodes_are_never_compared_across_folds():
    table = _table(lambda g, e: g + 0.1 * e).assign(
        layer="hidden", hidden_layer=pd.array([1] * 50, dtype="Int64"))
    row = verdict(concordance(table), table, Layer.hidden(0)).iloc[0]
    assert np.isnan(row["within_unit"]) and row["sign_note"] == "" and row["answer"]


def test_sensitivity_and_importance_give_one_verdict_for_one_definition():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3)) * [1.0, 3.0, 0.3]
    run = train_run(X, X @ [2.0, 0.5, 0.1], ArchSpec(hidden=(3,)), Protocol(folds=4, epochs=5),
                    features=["a", "b", "c"])
    sens = sensitivity(run, INPUT, ("permutation",))
    table = sensitivity_importance(sens, "delta_mse")
    assert set(table["definition"]) == {"ablation_permutation"}
    assert label("ablation_permutation") == "ΔMSE, permuted"
    assert label("ablation_zero_bias") == "|mean error| (the study's), set to 0 (the study's)"
    row = verdict(concordance(table), table).iloc[0]
    expected = np.mean([pd.Series(np.abs(g["gamma"].to_numpy())).corr(
        pd.Series(g["delta_mse"].to_numpy()), method="spearman")
        for _, g in sens.groupby("fold")])
    assert row["estimate"] == pytest.approx(expected)
