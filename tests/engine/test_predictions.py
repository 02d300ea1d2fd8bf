"""Every fold keeps its model's test predictions: stored at training (or checkpoint import) time,
saved with the run, and the ones the analyses read."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pandas as pd
import pytest

from bnapp.analyses.baselines import fold_predictions
from bnapp.cli.jobs import fold_summary
from bnapp.engine.keras_import import load_keras_run
from bnapp.engine.model import ArchSpec, predict
from bnapp.engine.protocols import Protocol
from bnapp.engine.results import run_from_bytes, run_to_bytes
from bnapp.engine.train import train_runs

FEATURES = ["Upre", "U120", "Upos", "PP", "UF"]
SPECS = [ArchSpec.study_e2e(), ArchSpec.study_zscore(),
         ArchSpec(hidden=(4, 3), activation="relu", output_activation="relu", hidden_bn=False)]
PROTOCOLS = {
    "kfold": Protocol(folds=3, epochs=30, seed=5),
    "repeated": Protocol(kind="repeated", folds=3, repeats=2, epochs=20, seed=5),
    # early stopping restores earlier weights: the predictions must be the restored model's
    "study, early stopping": Protocol(kind="study", folds=3, epochs=200, lr=0.05,
                                      val_fraction=0.25, patience=3, seed=5),
}


@pytest.fixture(scope="module")
def study_data(urea_csv):
    frame = pd.read_csv(urea_csv)
    frame = frame[frame["Ueq"] >= frame["Upos"]]
    return frame[FEATURES].to_numpy(float), frame["Ueq"].to_numpy(float)


def _expected(run, fold):
    return predict(run.spec, fold.weights, fold.network_input(run.spec, run.X[fold.test_rows]))


@pytest.mark.parametrize("name", PROTOCOLS)
def test_trained_folds_store_their_test_predictions(study_data, name):
    X, y = study_data
    runs = train_runs(X, y, SPECS, PROTOCOLS[name], features=FEATURES)
    if name.endswith("early stopping"):
        assert any(len(f.history["loss"]) < 200 for r in runs for f in r.folds)
    for run in runs:
        back = run_from_bytes(run_to_bytes(run))
        for fold, loaded in zip(run.folds, back.folds, strict=True):
            assert fold.test_predictions.shape == fold.test_rows.shape
            np.testing.assert_allclose(fold.test_predictions, _expected(run, fold),
                                       rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(loaded.test_predictions, fold.test_predictions)


def test_imported_checkpoints_carry_their_predictions(seed_dir):
    run = load_keras_run(seed_dir, "e2e")
    recorded = json.loads((seed_dir / "folds_e2e.json").read_text())["folds"]
    back = run_from_bytes(run_to_bytes(run))
    for fold, loaded, meta in zip(run.folds, back.folds, recorded, strict=True):
        np.testing.assert_allclose(fold.test_predictions, _expected(run, fold), rtol=1e-12)
        np.testing.assert_allclose(fold.test_predictions, meta["test_predictions"], atol=1e-4)
        np.testing.assert_array_equal(loaded.test_predictions, fold.test_predictions)


def test_analyses_read_the_stored_predictions(study_data):
    """Replace the stored predictions by truth + 1: every consumer must show an error of 1."""
    X, y = study_data
    (run,) = train_runs(X, y, SPECS[:1], PROTOCOLS["kfold"], features=FEATURES)
    folds = [dataclasses.replace(f, test_predictions=run.y[f.test_rows] + 1.0) for f in run.folds]
    shifted = dataclasses.replace(run, folds=folds)
    for f in shifted.folds:
        np.testing.assert_array_equal(shifted.test_predictions(f) - run.y[f.test_rows], 1.0)
    network = fold_predictions(shifted).query("method == 'network'")
    np.testing.assert_allclose(network.prediction - network.truth, 1.0)
    np.testing.assert_allclose(fold_summary(shifted).test_mse, 1.0)


def test_predictions_that_do_not_fit_the_test_rows_are_refused(study_data):
    X, y = study_data
    (run,) = train_runs(X, y, SPECS[:1], PROTOCOLS["kfold"], features=FEATURES)
    fold = dataclasses.replace(run.folds[0], test_predictions=np.zeros(3))
    with pytest.raises(ValueError, match=r"fold 0: \(3,\) test predictions for \d+ test rows"):
        dataclasses.replace(run, folds=[fold])
    # a results file without them (or from before they were stored) is not a complete result
    with np.load(io.BytesIO(run_to_bytes(run))) as z:
        arrays = {k: z[k] for k in z.files if k != "f0.test_predictions"}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    with pytest.raises(ValueError, match="not a complete bnapp results file"):
        run_from_bytes(buf.getvalue())
