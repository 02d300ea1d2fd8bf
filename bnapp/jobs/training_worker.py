"""What a training worker process runs; light to import (no pandas, no cache), as every new worker imports it."""

from __future__ import annotations

import contextlib
import os
import threading

from bnapp.engine.results import RunResult

PREPARE_NICENESS = 19


def prepare_pages(run: RunResult, run_key: str, groups=None, **_relay) -> None:
    """The run's first-visit analyses (bnapp.jobs.page_analyses, imported here: with pandas and
    scipy it would slow a training job), as a worker call of its own: the worker takes no other
    job meanwhile. Sharing a worker with the next training job, a long preparation (a run's
    cohort replicates) competed for its interpreter lock: the likely cause, never reproduced
    here, of a CI training job that stalled at 0 epochs for minutes.

    On a thread this call waits for, because Linux gives each thread a niceness of its own: the
    preparation takes only CPU time nobody else wants (the server drawing the run's results),
    while the worker's own thread keeps its priority for the jobs after."""
    thread = threading.Thread(target=_prepare, args=(run, run_key, groups),
                              name="bnapp-first-visit")
    thread.start()
    thread.join()


def _prepare(run: RunResult, run_key: str, groups=None) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PREPARE_NICENESS)
    from bnapp.jobs import page_analyses

    page_analyses.prepare(run, run_key, groups)


def train_run(X, y, spec, protocol, **kwargs) -> RunResult:
    """bnapp.engine.train.train_run, imported (with numba) when first called."""
    from bnapp.engine.train import train_run

    return train_run(X, y, spec, protocol, **kwargs)


def warm_trainer() -> None:
    """In a new worker: import the trainer and load its compiled code (from numba's disk cache;
    compiled there when empty) with one epoch on a few rows, before any job needs it."""
    import numpy as np

    from bnapp.engine.model import ArchSpec
    from bnapp.engine.protocols import Protocol

    rng = np.random.default_rng(0)
    train_run(rng.random((8, 2)), rng.random(8), ArchSpec.study_e2e(), Protocol(folds=2, epochs=1),
              features=["a", "b"])
