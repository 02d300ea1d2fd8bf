"""`python -m bnapp train | grid | cache`, and the cache-through path with the real engine."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from test_jobs_fakes import FakeProtocol, fake_train, same_run

from bnapp import cache, jobs
from bnapp.cli import main
from bnapp.model import ArchSpec
from bnapp.results import run_from_bytes

FEATURES = ["Upre", "U120", "Upos", "PP", "UF"]


def _refuse(*args, **kwargs):
    raise AssertionError("computed although the result is cached")


def _fill_cache(monkeypatch):
    monkeypatch.setattr(jobs, "_train_run", fake_train)
    X = np.random.default_rng(5).normal(60, 9, size=(15, 5))
    for spec in (ArchSpec(), ArchSpec.study_zscore()):
        jobs.cached_train(X, X[:, 0], spec, FakeProtocol(), features=FEATURES, target="Ueq",
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
    train = pytest.importorskip("bnapp.train")
    frame = pd.read_csv(urea_csv)
    X, y = frame[FEATURES].to_numpy(float), frame["Ueq"].to_numpy(float)
    protocol = train.Protocol(folds=2, epochs=3, seed=4)
    kw = dict(features=FEATURES, target="Ueq", data_key=cache.array_fingerprint(X, y, FEATURES, "Ueq"))
    first = jobs.cached_train(X, y, ArchSpec(), protocol, **kw)
    direct = train.train_run(X, y, ArchSpec(), protocol, features=FEATURES, target="Ueq")
    assert same_run(first, direct)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobs, "_train_run", _refuse)
        assert same_run(jobs.cached_train(X, y, ArchSpec(), protocol, **kw), first)


def test_cancel_a_real_training_job(urea_csv):
    train = pytest.importorskip("bnapp.train")
    frame = pd.read_csv(urea_csv)
    X, y = frame[FEATURES].to_numpy(float), frame["Ueq"].to_numpy(float)
    manager = jobs.JobManager(max_jobs=1)
    job = manager.submit_train(X, y, ArchSpec(), train.Protocol(folds=2, epochs=5000, seed=1),
                               features=FEATURES, target="Ueq", data_key="real-cancel")
    deadline = time.monotonic() + 120
    while job.progress == 0 and not job.wait(0.01):
        assert time.monotonic() < deadline
    job.cancel()
    assert job.wait(120)
    assert job.state == "cancelled" and cache.entries().empty


def test_train_command_writes_results_and_uses_the_cache(urea_csv, tmp_path, monkeypatch):
    pytest.importorskip("bnapp.data")
    pytest.importorskip("bnapp.train")
    args = ["train", "--data", str(urea_csv), "--hidden", "6", "--folds", "2", "--epochs", "2",
            "--seed", "1"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    run = run_from_bytes((tmp_path / "a" / "results.npz").read_bytes())
    folds = pd.read_csv(tmp_path / "a" / "folds.csv")
    assert len(run.folds) == 2 and folds.fold.tolist() == [0, 1]
    assert folds.n_test.sum() == len(run.y)
    err = run.test_predictions(run.folds[1]) - run.y[run.folds[1].test_rows]
    assert folds.test_mse[1] == pytest.approx(np.mean(err**2))
    monkeypatch.setattr(jobs, "_train_run", _refuse)
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert same_run(*((tmp_path / d / "results.npz").read_bytes() for d in "ab"))


def test_train_command_refuses_a_missing_file(tmp_path, capsys):
    pytest.importorskip("bnapp.data")
    assert main(["train", "--data", str(tmp_path / "none.csv"), "--out", str(tmp_path)]) == 2
    assert "none.csv" in capsys.readouterr().err


def test_grid_command_twice_is_served_from_the_cache(urea_csv, tmp_path, monkeypatch):
    grid = pytest.importorskip("bnapp.grid")
    pytest.importorskip("bnapp.data")
    few = grid.study_grid()[::80]
    monkeypatch.setattr(grid, "study_grid", lambda: few)
    args = ["grid", "--data", str(urea_csv), "--folds", "2", "--epochs", "2", "--seed", "3"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    first = pd.read_csv(tmp_path / "a" / "grid.csv")
    assert len(first) == len(few) and set(first.label) == {s.label for s in few}
    best = pd.read_csv(tmp_path / "a" / "best.csv")
    assert set(best.input_mode) <= {"raw", "zscore"} and len(best) >= 1
    monkeypatch.setattr(jobs, "_run_grid", _refuse)
    jobs.job_manager()._by_key.clear()  # a new process would not have the first job in memory
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "grid.csv").read_bytes() == (tmp_path / "a" / "grid.csv").read_bytes()
