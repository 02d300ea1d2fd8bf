"""What a training worker process runs; light to import (no pandas, no cache), as every new worker imports it."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable

from bnapp.engine.results import RunResult

PREPARE_NICENESS = 19


def train_then_prepare(train: Callable[..., RunResult], run_key: str, *args,
                       **kwargs) -> RunResult:
    """train(*args, **kwargs), then the run's first-visit analyses on a thread of this worker's
    own (bnapp.jobs.page_analyses, imported there: with pandas and scipy it would slow the job)."""
    run = train(*args, **kwargs)
    threading.Thread(target=_prepare, args=(run, run_key, kwargs.get("groups")),
                     name="bnapp-first-visit", daemon=True).start()
    return run


def _prepare(run: RunResult, run_key: str, groups=None) -> None:
    # Linux gives each thread a niceness of its own: this one takes only CPU time nobody else
    # wants (the browser and the server drawing the run's results on the same machine)
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
