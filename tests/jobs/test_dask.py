"""Scale-out: with BNAPP_DASK_SCHEDULER set, jobs run on a Dask cluster and give the local result."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest
from joblib import Parallel, delayed

from bnapp.engine.model import ArchSpec
from bnapp.jobs import backend, cache, runner
from tests.jobs.fakes import Calls, FakeProtocol, fake_grid, fake_train, same_run, where_am_i

FEATURES = ["Upre", "U120", "Upos", "PP", "UF"]
SPECS = [ArchSpec(), ArchSpec(hidden=(2, 3)), ArchSpec.study_zscore(), ArchSpec(activation="relu")]


@pytest.fixture(scope="module")
def cluster():
    import distributed
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as local:
        yield local.scheduler_address
        client = backend._clients.pop(local.scheduler_address, None)
        if client is not None:
            client.close()


@pytest.fixture()
def data():
    X = np.random.default_rng(11).normal(70, 15, size=(20, 5))
    return X, X[:, 2] * 0.8


def grid_recording_workers(X, y, protocol, specs, *, features, progress=None, n_jobs=-1):
    frame = fake_grid(X, y, protocol, specs, features=features, progress=progress, n_jobs=n_jobs)
    frame["ran_on"] = Parallel(n_jobs=n_jobs)(delayed(where_am_i)(i) for i in range(len(frame)))
    return frame


def _grid(X, y):
    return runner.cached_grid(X, y, FakeProtocol(), SPECS, features=FEATURES, target="Ueq",
                            data_key=cache.array_fingerprint(X, y, FEATURES, "Ueq"))


def test_grid_runs_on_the_cluster_and_matches_local(cluster, data, monkeypatch):
    monkeypatch.setattr(runner, "_run_grid", grid_recording_workers)
    X, y = data
    local = _grid(X, y)
    assert all(w.startswith("pid ") for w in local.ran_on)
    cache.clear()
    monkeypatch.setenv("BNAPP_DASK_SCHEDULER", cluster)
    remote = runner.job_manager().submit_grid(X, y, FakeProtocol(), SPECS, features=FEATURES,
                                            target="Ueq", data_key=cache.array_fingerprint(X, y, FEATURES, "Ueq"))
    remote = remote.result(120)
    workers = set(remote.ran_on)
    assert len(workers) == 1 and workers.pop().startswith("tcp://127.0.0.1:")
    pd.testing.assert_frame_equal(remote.drop(columns="ran_on"), local.drop(columns="ran_on"))


@pytest.mark.parametrize("in_worker", [False, True], ids=["direct", "as-a-job"])
def test_train_runs_on_the_cluster_and_matches_local(cluster, data, monkeypatch, tmp_path,
                                                     in_worker):
    calls = Calls.at(tmp_path / "calls")
    monkeypatch.setattr(runner, "_train_run", partial(fake_train, calls=calls))
    monkeypatch.setenv("BNAPP_DASK_SCHEDULER", cluster)
    X, y = data
    remote = runner.cached_train(X, y, ArchSpec(), FakeProtocol(), features=FEATURES, target="Ueq",
                               data_key="d-dask", in_worker=in_worker)
    (place,) = calls.places()
    assert place.startswith("tcp://127.0.0.1:"), "the training ran in a cluster worker"
    local = fake_train(X, y, ArchSpec(), FakeProtocol(), features=FEATURES, target="Ueq")
    assert same_run(remote, local)
    assert len(cache.entries()) == 1, "the cluster's result is cached here"


def test_unreachable_scheduler_fails_the_job_with_a_message(monkeypatch, data):
    monkeypatch.setattr(runner, "_run_grid", fake_grid)
    monkeypatch.setattr(backend, "_client_timeout", 2)
    monkeypatch.setenv("BNAPP_DASK_SCHEDULER", "tcp://127.0.0.1:9")
    X, y = data
    job = runner.JobManager().submit_grid(X, y, FakeProtocol(), SPECS, features=FEATURES,
                                        target="Ueq", data_key="d-unreachable")
    assert job.wait(120)
    assert job.state == "failed"
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in job.error


def test_real_grid_on_the_cluster_matches_local(cluster, urea_csv, monkeypatch):
    from bnapp.engine import grid, train
    frame = pd.read_csv(urea_csv)
    X, y = frame[FEATURES].to_numpy(float), frame["Ueq"].to_numpy(float)
    specs = grid.study_grid()[::60]
    protocol = train.Protocol(folds=2, epochs=2, seed=5)
    kw = dict(features=FEATURES, target="Ueq", data_key=cache.array_fingerprint(X, y, FEATURES, "Ueq"))
    local = runner.cached_grid(X, y, protocol, specs, **kw)
    cache.clear()
    monkeypatch.setenv("BNAPP_DASK_SCHEDULER", cluster)
    from distributed import get_task_stream

    with get_task_stream(backend.dask_client(cluster)) as tasks:
        remote = runner.cached_grid(X, y, protocol, specs, **kw)
    assert len(tasks.data) >= len({s.hidden for s in specs}), "every shape ran on the cluster"
    assert len(remote) == len(specs) and remote.cv_mse_mean.notna().all()
    pd.testing.assert_frame_equal(remote, local)
