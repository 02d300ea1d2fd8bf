"""`python -m bnapp train | grid | cache`, and the cache-through path with the real engine."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from bnapp.cli import main
from bnapp.engine.model import ArchSpec
from bnapp.engine.results import run_from_bytes
from bnapp.jobs import cache, cached, scheduler
from tests.jobs.fakes import FakeProtocol, fake_train, same_run

FEATURES = ["Upre", "U120", "Upos", "PP", "UF"]
HANG_SECONDS = 300  # a bound for a hung job, not a speed requirement


def _refuse(*args, **kwargs):
    raise AssertionError("computed although the result is cached")


def _fill_cache(monkeypatch):
    monkeypatch.setattr(cached, "train_run", fake_train)
    X = np.random.default_rng(5).normal(60, 9, size=(15, 5))
    for spec in (ArchSpec(), ArchSpec.study_zscore()):
        cached.cached_train(X, X[:, 0], spec, FakeProtocol(), features=FEATURES, target="Ueq",
                          data_key="cli", data_name="ward-3.csv")
    return cache.entries()


def test_cache_list_and_clear(monkeypatch, capsys):
    assert main(["cache", "list"]) == 0
    assert "no cached results" in capsys.readouterr().out
    table = _fill_cache(monkeypatch)
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert str(cache.cache_dir()) in out and "ward-3.csv" in out
    assert ArchSpec.study_zscore().label in out and table.key[0][:12] in out
    assert main(["cache", "clear", "--key", table.key[0][:8]]) == 0
    assert cache.entries().key.tolist() == [table.key[1]]
    assert main(["cache", "clear", "--all"]) == 0
    assert cache.entries().empty


def test_cache_clear_unknown_key_is_a_user_error(capsys):
    assert main(["cache", "clear", "--key", "deadbeef"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no cache entries match 'deadbeef'") and "cache list" in err


def test_cached_train_with_the_real_engine(urea_csv):
    from bnapp.engine import protocols, train
    frame = pd.read_csv(urea_csv)
    X, y = frame[FEATURES].to_numpy(float), frame["Ueq"].to_numpy(float)
    protocol = protocols.Protocol(folds=2, epochs=3, seed=4)
    kw = dict(features=FEATURES, target="Ueq", data_key=cache.array_fingerprint(X, y, FEATURES, "Ueq"))
    first = cached.cached_train(X, y, ArchSpec(), protocol, **kw)
    direct = train.train_run(X, y, ArchSpec(), protocol, features=FEATURES, target="Ueq")
    assert same_run(first, direct)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cached, "train_run", _refuse)
        assert same_run(cached.cached_train(X, y, ArchSpec(), protocol, **kw), first)


def train_until_cancelled(X, y, spec, protocol, *, progress, cancel, **kwargs):
    """The real train_run, held at its first progress report until the job is cancelled.

    Module-level, so a job's worker process can import it by name."""
    from bnapp.engine.train import train_run

    def report(fraction, message=""):
        progress(fraction, message)
        deadline = time.monotonic() + HANG_SECONDS  # a hang guard, not a timing
        while not cancel():
            if time.monotonic() > deadline:
                raise RuntimeError("the test never cancelled")
            time.sleep(0.01)

    return train_run(X, y, spec, protocol, progress=report, cancel=cancel, **kwargs)


@pytest.mark.slow
def test_cancel_a_real_training_job(urea_csv, monkeypatch):
    """The cancel always arrives mid-run, however slow or fast the machine: the run cannot go
    past its first progress report until it is cancelled."""
    frame = pd.read_csv(urea_csv)
    from bnapp.engine import protocols

    X, y = frame[FEATURES].to_numpy(float), frame["Ueq"].to_numpy(float)
    monkeypatch.setattr(cached, "train_run", train_until_cancelled)
    manager = scheduler.JobManager(max_jobs=1)
    job = manager.submit_train(X, y, ArchSpec(), protocols.Protocol(folds=2, epochs=40, seed=1),
                               features=FEATURES, target="Ueq", data_key="real-cancel")
    deadline = time.monotonic() + HANG_SECONDS
    while job.progress == 0 and not job.wait(0.01):
        assert time.monotonic() < deadline, "no progress report"
    assert job.state == "running", (job.state, job.error)
    job.cancel()
    assert job.wait(HANG_SECONDS)
    assert job.state == "cancelled" and cache.entries().empty


def test_train_command_writes_results_and_uses_the_cache(urea_csv, tmp_path, monkeypatch):
    args = ["train", "--data", str(urea_csv), "--hidden", "6", "--folds", "2", "--epochs", "2",
            "--seed", "1"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    run = run_from_bytes((tmp_path / "a" / "results.npz").read_bytes())
    folds = pd.read_csv(tmp_path / "a" / "folds.csv")
    assert len(run.folds) == 2 and folds.fold.tolist() == [0, 1]
    assert folds.n_test.sum() == len(run.y)
    err = run.test_predictions(run.folds[1]) - run.y[run.folds[1].test_rows]
    assert folds.test_mse[1] == pytest.approx(np.mean(err**2))
    monkeypatch.setattr(cached, "train_run", _refuse)
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert same_run(*((tmp_path / d / "results.npz").read_bytes() for d in "ab"))
    # `cache open` writes the same files from the entry `cache list` shows
    (key,) = cache.entries().key
    assert main(["cache", "open", key[:12], "--out", str(tmp_path / "c")]) == 0
    assert same_run(*((tmp_path / d / "results.npz").read_bytes() for d in "ac"))
    assert (tmp_path / "c" / "folds.csv").read_bytes() == (tmp_path / "a" / "folds.csv").read_bytes()


def test_cache_open_unknown_or_damaged_key_is_a_user_error(monkeypatch, tmp_path, capsys):
    assert main(["cache", "open", "deadbeef", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no cache entries match 'deadbeef'") and "cache list" in err
    assert not (tmp_path / "x").exists()
    (key, _) = _fill_cache(monkeypatch).key
    (cache.cache_dir() / f"{key}.npz").write_bytes(b"damaged")
    with pytest.warns(cache.CacheWarning):
        assert main(["cache", "open", key, "--out", str(tmp_path / "y")]) == 2
    assert "could not be read" in capsys.readouterr().err and not (tmp_path / "y").exists()


def test_train_command_with_validation_and_early_stopping(urea_csv, tmp_path, capsys):
    args = ["train", "--data", str(urea_csv), "--folds", "3", "--epochs", "200", "--lr", "0.05",
            "--seed", "2", "--val-fraction", "0.25", "--out", str(tmp_path)]
    assert main([*args, "--patience", "5"]) == 0
    run = run_from_bytes((tmp_path / "results.npz").read_bytes())
    folds = pd.read_csv(tmp_path / "folds.csv")
    assert run.protocol["val_fraction"] == 0.25 and run.protocol["patience"] == 5
    assert (folds.n_val == [math.ceil(0.25 * n) for n in folds.n_train + folds.n_val]).all()
    for fold, stopped in zip(run.folds, folds.stopped_epoch, strict=True):
        assert stopped == fold.stopped_epoch == int(np.argmin(fold.history["val_loss"]))
    assert (folds.stopped_epoch < 194).any(), "early stopping must trigger on this data"
    assert main(args) == 0  # validation rows without early stopping: off by default
    assert pd.read_csv(tmp_path / "folds.csv").stopped_epoch.isna().all()
    assert main([*args[:-4], "--patience", "5", "--out", str(tmp_path)]) == 2
    assert "early stopping needs validation rows" in capsys.readouterr().err


def test_train_command_refuses_a_missing_file(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "none.csv"), "--out", str(tmp_path)]) == 2
    assert "none.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_grid_command_twice_is_served_from_the_cache(urea_csv, tmp_path, monkeypatch, capsys):
    from bnapp.engine import grid
    few = grid.grid_specs(depths=(1, 4), widths=(2,), activations=("relu",), bn=(True,))
    args = ["grid", "--data", str(urea_csv), "--folds", "2", "--epochs", "2", "--seed", "3",
            "--depths", "1,4", "--widths", "2", "--activations", "relu", "--bn", "yes"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    first = pd.read_csv(tmp_path / "a" / "grid.csv")
    assert len(first) == len(few) and set(first.label) == {s.label for s in few}
    best = pd.read_csv(tmp_path / "a" / "best.csv")
    assert set(best.input_mode) <= {"raw", "zscore"} and len(best) >= 1
    np.testing.assert_array_equal(first["near_best"], grid.near_best(first.drop(columns="near_best")))
    assert "within one standard error of the best" in capsys.readouterr().out
    monkeypatch.setattr(cached, "run_grid", _refuse)
    scheduler.job_manager()._by_key.clear()  # a new process would not have the first job in memory
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "grid.csv").read_bytes() == (tmp_path / "a" / "grid.csv").read_bytes()
    (key,) = cache.entries().key
    assert main(["cache", "open", key[:8], "--out", str(tmp_path / "c")]) == 0
    for name in ("grid.csv", "best.csv"):
        assert (tmp_path / "c" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()


def test_grid_command_without_the_stability_check(urea_csv, tmp_path):
    args = ["grid", "--data", str(urea_csv), "--folds", "2", "--epochs", "2", "--widths", "3",
            "--depths", "2", "--input-modes", "zscore", "--no-stability", "--out", str(tmp_path)]
    assert main(args) == 0
    table = pd.read_csv(tmp_path / "grid.csv")
    assert len(table) == 12 and set(table.input_mode) == {"zscore"}
    assert "instability" not in table


@pytest.mark.parametrize("option", [["--depths", "5"], ["--bn", "maybe"], ["--widths", "x"],
                                    ["--activations", ""]])
def test_grid_command_refuses_values_outside_the_grid(urea_csv, tmp_path, capsys, option):
    args = ["grid", "--data", str(urea_csv), "--folds", "2", "--epochs", "2", *option,
            "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert option[0] in err and len(err.splitlines()) == 1
