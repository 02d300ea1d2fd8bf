"""The Train page's curves (issue 27, item 8): a legend entry only for rows that exist, each
model's held-out error beside its curves, γ as a median and band over the folds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp.analyses.stages import held_out_errors
from bnapp.engine.model import ArchSpec, forward
from bnapp.report import network_charts
from tests.analyses.test_metrics import make_run
from tests.report.test_charts_builders import make_curves


def layers(chart) -> list[dict]:
    spec = chart.to_dict()
    return spec.get("layer", [spec])


def colour_domain(chart) -> list[str]:
    return layers(chart)[0]["encoding"]["color"]["scale"]["domain"]


def inline(chart) -> list[pd.DataFrame]:
    return [pd.DataFrame(rows) for rows in chart.to_dict()["datasets"].values()]


def test_no_validation_legend_without_validation_rows():
    loss, _ = make_curves(epochs=30, folds=3)
    assert colour_domain(network_charts.loss_curves(loss)) == ["training", "validation"]
    without = network_charts.loss_curves(loss.assign(val_loss=np.nan))
    assert colour_domain(without) == ["training"]
    assert "validation" not in json.dumps(without.to_dict())


def test_the_held_out_error_is_a_dot_per_model_at_its_kept_epoch():
    loss, _ = make_curves(epochs=30, folds=3)
    held_out = pd.DataFrame({"fold": [0, 1, 2], "epoch": [30, 30, 12], "mse": [41.0, 44.0, 39.0]})
    chart = network_charts.loss_curves(loss.assign(val_loss=np.nan), held_out)
    assert colour_domain(chart) == ["training", network_charts.HELD_OUT]
    (dots,) = [d for d in inline(chart) if len(d) == 3]
    pd.testing.assert_frame_equal(dots[["fold", "epoch", "mse"]], held_out)
    assert "test rows" in json.dumps(chart.to_dict()["title"]["subtitle"])
    # the log axis reaches the dots too
    assert chart.to_dict()["layer"][0]["encoding"]["y"]["scale"]["domain"][0] <= 39.0


def test_held_out_errors_are_each_models_test_mse():
    run = make_run(ArchSpec(), folds=3)
    run.folds[1].stopped_epoch = 3  # early stopping kept the 4th epoch's network
    found = held_out_errors(run)
    assert list(found["fold"]) == [0, 1, 2] and list(found["epoch"]) == [7, 4, 7]
    for fold, mse in zip(run.folds, found["mse"], strict=True):
        x = fold.network_input(run.spec, run.X[fold.test_rows])
        residuals = run.y[fold.test_rows] - forward(run.spec, fold.weights, x).output.ravel()
        assert np.isclose(mse, residuals @ residuals / len(residuals))


def test_held_out_errors_skip_imported_models():
    run = make_run(ArchSpec(), folds=2)
    for fold in run.folds:
        fold.history = {}
    assert held_out_errors(run).empty


@given(folds=st.integers(1, 9), epochs=st.integers(1, 40), seed=st.integers(0, 2**16))
@settings(max_examples=20, deadline=None)
def test_gamma_band_is_the_median_and_middle_half_of_the_folds(folds, epochs, seed):
    _, gamma = make_curves(epochs=epochs, folds=folds, seed=seed)
    chart = network_charts.gamma_trajectories(gamma)
    (drawn,) = inline(chart)
    assert len(drawn) == gamma[["unit", "epoch"]].drop_duplicates().shape[0]
    for row in drawn.sample(min(len(drawn), 5), random_state=0).itertuples():
        values = gamma[(gamma["unit"] == row.unit) & (gamma["epoch"] == row.epoch)]["gamma"]
        assert np.allclose([row.median, row.low, row.high],
                           np.percentile(values, [50, 25, 75]))
    assert "median over the folds" in json.dumps(chart.to_dict()["title"]["subtitle"])


def test_per_fold_gamma_on_demand_draws_a_line_per_fold():
    _, gamma = make_curves(epochs=10, folds=4)
    chart = network_charts.gamma_trajectories(gamma, band=False)
    (drawn,) = inline(chart)
    assert len(drawn) == len(gamma) and chart.to_dict()["encoding"]["detail"]["field"] == "fold"


