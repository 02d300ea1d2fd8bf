"""Scale-out: with BNAPP_DASK_SCHEDULER set, jobs run on a Dask cluster (two worker processes)
and give the local result; a run's folds spread over the workers, the data sent once to each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from joblib import Parallel, delayed

from bnapp.engine.model import ArchSpec
from bnapp.jobs import cache, cached, processes, scheduler
from tests.jobs.fakes import FakeProtocol, fake_grid, same_run, where_am_i

FEATURES = ["Upre", "U120", "Upos", "PP", "UF"]
SPECS = [ArchSpec(), ArchSpec(hidden=(2, 3)), ArchSpec.study_zscore(), ArchSpec(activation="relu")]


@pytest.fixture(scope="module")
def cluster():
    import dask
    import distributed

    # no active memory manager: it would drop the workers' extra copies of the data once the
    # tasks are done, and the test checks that every worker got one
    with dask.config.set({"distributed.scheduler.active-memory-manager.start": False}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as local:
        yield local.scheduler_address
        client = processes._clients.pop(local.scheduler_address, None)
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
    return cached.cached_grid(X, y, FakeProtocol(), SPECS, features=FEATURES, target="Ueq",
                            data_key=cache.array_fingerprint(X, y, FEATURES, "Ueq"))


@pytest.mark.slow
def test_grid_runs_on_the_cluster_and_matches_local(cluster, data, monkeypatch):
    monkeypatch.setattr(cached, "run_grid", grid_recording_workers)
    X, y = data
    local = _grid(X, y)
    assert all(w.startswith("pid ") for w in local.ran_on)
    cache.clear()
    monkeypatch.setenv("BNAPP_DASK_SCHEDULER", cluster)
    remote = scheduler.job_manager().submit_grid(X, y, FakeProtocol(), SPECS, features=FEATURES,
                                            target="Ueq", data_key=cache.array_fingerprint(X, y, FEATURES, "Ueq"))
    remote = remote.result(120)
    assert all(w.startswith("tcp://127.0.0.1:") for w in remote.ran_on)
    pd.testing.assert_frame_equal(remote.drop(columns="ran_on"), local.drop(columns="ran_on"))


class Submissions:
    """What the client sends the cluster: every task joblib submits, and the scattered data."""

    def __init__(self, monkeypatch):
        from distributed import Client

        self.tasks: list = []
        submit = Client.submit

        def recording(client, fn, *args, tasks=(), **kwargs):
            self.tasks.extend(tasks)
            return submit(client, fn, *args, tasks=tasks, **kwargs)

        monkeypatch.setattr(Client, "submit", recording)

    def futures(self, task) -> list:
        from distributed import Future

        _, args, kwargs = task
        return [a for a in [*args, *kwargs.values()] if isinstance(a, Future)]

    def rest_bytes(self, task) -> int:
        """The pickled size of a task without its scattered arguments."""
        import cloudpickle
        from distributed import Future

        fn, args, kwargs = task
        return len(cloudpickle.dumps((fn, [a for a in args if not isinstance(a, Future)],
                                      {k: v for k, v in kwargs.items()
                                       if not isinstance(v, Future)})))

    def shared(self) -> list:
        """The scattered arguments every task refers to (joblib scatters a task's own big
        arguments too, once each)."""
        common = set.intersection(*({f.key for f in self.futures(t)} for t in self.tasks))
        return [f for f in self.futures(self.tasks[0]) if f.key in common]


@pytest.mark.parametrize("as_job", [False, True], ids=["direct", "as-a-job"])
@pytest.mark.slow
def test_a_runs_folds_spread_over_the_workers_with_the_data_sent_once_to_each(
        cluster, monkeypatch, as_job):
    from distributed import get_task_stream

    from bnapp.engine.protocols import Protocol
    from bnapp.engine.train import train_run
    rng = np.random.default_rng(5)
    X = rng.normal(70, 15, size=(2000, 5))
    y = X @ np.array([0.1, 0.3, 0.5, 0.0, 0.1]) + rng.normal(size=2000)
    protocol = Protocol(folds=4, epochs=15, seed=2)
    local = train_run(X, y, ArchSpec(), protocol, features=FEATURES)
    monkeypatch.setenv("BNAPP_DASK_SCHEDULER", cluster)
    client = processes.dask_client(cluster)
    sent = Submissions(monkeypatch)
    kw = dict(features=FEATURES, target="Ueq", data_key=cache.array_fingerprint(X, y, FEATURES, "Ueq"))
    with get_task_stream(client) as stream:
        if as_job:
            job = scheduler.job_manager().submit_train(X, y, ArchSpec(), protocol, **kw)
            remote = job.result(300)
        else:
            remote = cached.cached_train(X, y, ArchSpec(), protocol, **kw)
    assert same_run(remote, local), "the cluster's run is the local one, bit for bit"
    assert len(sent.tasks) == protocol.folds, "one task per fold"
    assert len({t["worker"] for t in stream.data}) == 2, "the folds spread over both workers"
    # X and y went to the workers once each, as two scattered futures every task refers to
    shared = sent.shared()
    assert len(shared) == 2, "X and y, scattered once for all the tasks"
    holders = client.who_has(shared)
    assert all(len(workers) == 2 for workers in holders.values()), f"not on every worker: {holders}"
    assert all(sent.rest_bytes(task) < X.nbytes / 4 for task in sent.tasks)
    assert len(cache.entries()) == 1, "the cluster's result is cached here"


@pytest.mark.slow
def test_unreachable_scheduler_fails_the_job_with_a_message(monkeypatch, data):
    monkeypatch.setattr(cached, "run_grid", fake_grid)
    monkeypatch.setattr(processes, "_client_timeout", 2)
    monkeypatch.setenv("BNAPP_DASK_SCHEDULER", "tcp://127.0.0.1:9")
    X, y = data
    job = scheduler.JobManager().submit_grid(X, y, FakeProtocol(), SPECS, features=FEATURES,
                                        target="Ueq", data_key="d-unreachable")
    assert job.wait(120)
    assert job.state == "failed"
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in job.error


@pytest.mark.slow
def test_real_grid_on_the_cluster_matches_local(cluster, urea_csv, monkeypatch):
    from bnapp.engine import grid, protocols
    frame = pd.read_csv(urea_csv)
    X, y = frame[FEATURES].to_numpy(float), frame["Ueq"].to_numpy(float)
    specs = grid.study_grid()[::60]
    protocol = protocols.Protocol(folds=2, epochs=2, seed=5)
    kw = dict(features=FEATURES, target="Ueq", data_key=cache.array_fingerprint(X, y, FEATURES, "Ueq"))
    local = cached.cached_grid(X, y, protocol, specs, **kw)
    cache.clear()
    monkeypatch.setenv("BNAPP_DASK_SCHEDULER", cluster)
    from distributed import get_task_stream

    sent = Submissions(monkeypatch)
    with get_task_stream(processes.dask_client(cluster)) as tasks:
        remote = cached.cached_grid(X, y, protocol, specs, **kw)
    # every shape twice: the second training is the grid's stability column
    assert len(sent.tasks) == 2 * len({s.hidden for s in specs}), "every shape went to the cluster"
    assert tasks.data, "and ran there"
    assert len(sent.shared()) == 2, "X and y sent once, not with every shape"
    assert len(remote) == len(specs) and remote.cv_mse_mean.notna().all()
    pd.testing.assert_frame_equal(remote, local)
