"""The leave-one-unit-out comparison: per held-out unit the network and the formulas, and the
agreement of the |γ| rankings learnt without each unit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bnapp.analyses import cohort_intervals as ci
from bnapp.analyses.groups import (
    gamma_by_held_out_group,
    gamma_rank_agreement,
    gamma_rank_summary,
    held_out_comparison,
)
from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol, grouped
from bnapp.engine.train import train_run
from bnapp.intake.simulator import simulate_cohort
from bnapp.intake.units import STUDY_INPUTS


@pytest.fixture(scope="module")
def three_units():
    cohort = simulate_cohort(60, seed=3)
    units = np.array(["north", "south", "east"] * 20, dtype=object)
    protocol = grouped(Protocol(epochs=5, seed=2), "leave-one-group-out", "unit", units)
    run = train_run(cohort[STUDY_INPUTS].to_numpy(), cohort["Ueq"].to_numpy(),
                    ArchSpec.study_e2e(), protocol, features=STUDY_INPUTS, groups=units)
    return run, units


def test_each_unit_is_scored_on_its_own_rows(three_units):
    run, units = three_units
    table = held_out_comparison(run, units)
    assert sorted(table["held_out"].unique()) == ["east", "north", "south"]
    for fold in run.folds:
        (unit,) = set(units[fold.test_rows])
        rows = table[table["held_out"] == unit].set_index("method")
        err = run.test_predictions(fold) - run.y[fold.test_rows]
        assert rows.at["network", "n"] == 20
        assert rows.at["network", "rmse"] == pytest.approx(np.sqrt(np.mean(err**2)))
        # OLS fitted on the other two units, by a separate least-squares solve
        train = fold.train_rows
        design = np.c_[np.ones(len(train)), run.X[train]]
        coef = np.linalg.lstsq(design, run.y[train], rcond=None)[0]
        ols = np.c_[np.ones(len(fold.test_rows)), run.X[fold.test_rows]] @ coef
        ols_rmse = np.sqrt(np.mean((ols - run.y[fold.test_rows]) ** 2))
        assert rows.at["linear_regression", "rmse"] == pytest.approx(ols_rmse)
        assert rows.at["linear_regression", "rmse_minus_network"] == pytest.approx(
            ols_rmse - rows.at["network", "rmse"])
    assert {"rate_equation", "tattersall"} <= set(table["method"])


def _spearman_by_hand(x: np.ndarray, y: np.ndarray) -> float:
    """1 - 6 Σd² / (n(n²-1)): exact without ties."""
    rx, ry = np.argsort(np.argsort(-x)), np.argsort(np.argsort(-y))
    n = len(x)
    return 1 - 6 * np.sum((rx - ry) ** 2) / (n * (n**2 - 1))


def _kendall_by_hand(x: np.ndarray, y: np.ndarray) -> float:
    pairs = [(i, j) for i in range(len(x)) for j in range(i + 1, len(x))]
    s = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in pairs)
    return s / len(pairs)


def test_gamma_rankings_are_compared_for_every_pair_of_units(three_units):
    run, units = three_units
    gammas = gamma_by_held_out_group(run, units)
    assert len(gammas) == 3 * len(STUDY_INPUTS)
    agreement = gamma_rank_agreement(run, units)
    assert len(agreement) == 3  # 3 units: 3 pairs
    by_unit = {u: g.set_index("input")["abs_gamma"].reindex(STUDY_INPUTS).to_numpy()
               for u, g in gammas.groupby("held_out")}
    for row in agreement.itertuples():
        a, b = by_unit[row.held_out_a], by_unit[row.held_out_b]
        assert row.spearman == pytest.approx(_spearman_by_hand(a, b))
        assert row.kendall == pytest.approx(_kendall_by_hand(a, b))
        assert row.same_order == (row.order_a == row.order_b) == (row.kendall == pytest.approx(1))
        assert row.order_a.split(" > ")[0] == STUDY_INPUTS[int(np.argmax(a))]


def test_labels_must_be_the_runs(three_units):
    run, units = three_units
    with pytest.raises(ValueError, match="not the labels of 'unit'"):
        held_out_comparison(run, units[::-1])
    with pytest.raises(ValueError, match="59 group labels"):
        held_out_comparison(run, units[1:])


def test_no_input_bn_means_no_ranking():
    cohort = simulate_cohort(40, seed=1)
    units = np.repeat([0, 1], 20)
    protocol = grouped(Protocol(folds=2, epochs=2), "group-kfold", "unit", units)
    run = train_run(cohort[STUDY_INPUTS].to_numpy(), cohort["Ueq"].to_numpy(),
                    ArchSpec(input_bn=False), protocol, features=STUDY_INPUTS, groups=units)
    assert gamma_by_held_out_group(run, units).empty
    assert isinstance(gamma_rank_agreement(run, units), pd.DataFrame)
    assert gamma_rank_agreement(run, units).empty


def test_the_rank_summary_is_the_mean_of_the_pairs_with_a_cohort_interval(three_units):
    run, units = three_units
    pairs = gamma_rank_agreement(run, units)
    bare = gamma_rank_summary(run, units, n_replicates=0).set_index("statistic")
    assert bare.at["mean_spearman", "estimate"] == pytest.approx(pairs["spearman"].mean())
    assert bare.at["mean_kendall", "estimate"] == pytest.approx(pairs["kendall"].mean())
    assert bare.at["share_same_order", "estimate"] == pytest.approx(pairs["same_order"].mean())
    assert (bare["n_pairs"] == 3).all() and bare["ci_low"].isna().all()
    # three units drawn with replacement: a replicate may hold one unit only, which leaves no
    # pair of folds; more units keep most replicates usable
    many = np.array([f"u{i}" for i in range(6)] * 10, dtype=object)
    protocol = grouped(Protocol(epochs=5, seed=2), "leave-one-group-out", "unit", many)
    run = train_run(run.X, run.y, run.spec, protocol, features=STUDY_INPUTS, groups=many)
    replicated = ci.replicate_runs(ci.Cohort.of_run(run, many), 30)
    out = gamma_rank_summary(run, many, cohort=replicated).set_index("statistic")
    assert "unit groups" in out.at["mean_spearman", "interval"]
    assert (out["ci_low"] <= out["estimate"]).all() and (out["estimate"] <= out["ci_high"]).all()
    assert 0 <= out.at["share_same_order", "ci_low"] and out.at["share_same_order", "ci_high"] <= 1


def test_the_session_lengths_reach_the_formulas_of_each_held_out_unit(three_units):
    """Per-row session lengths and the access (the Data page's) reach the formulas scored on
    each held-out unit: their rows are baselines.fold_predictions' with those lengths."""
    from bnapp.analyses.baselines import fold_predictions, quality

    run, units = three_units
    hours = np.linspace(2.5, 5.0, len(run.y))
    table = held_out_comparison(run, units, hours, "venous").set_index(["fold", "method"])
    preds = fold_predictions(run, hours, "venous")
    for (fold, method), rows in preds.groupby(["fold", "method"]):
        want = quality(rows["truth"].to_numpy(), rows["prediction"].to_numpy())["rmse"]
        assert table.at[(fold, method), "rmse"] == pytest.approx(want, rel=1e-12)
    default = held_out_comparison(run, units).set_index(["fold", "method"])
    assert not np.allclose(table.xs("rate_equation", level="method")["rmse"],
                           default.xs("rate_equation", level="method")["rmse"])
    assert np.allclose(table.xs("network", level="method")["rmse"],
                       default.xs("network", level="method")["rmse"])
