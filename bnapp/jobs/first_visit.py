"""What the dashboard's pages compute when they first show a run, computed ahead of the visit.

A training job's worker process, once the run is trained, computes these on a thread of its own
(bnapp.jobs.tasks.train_then_prepare) and stores them in the analysis cache beside the run; a
page then reads its analyses from the disk instead of computing them while the user waits. The
worker's thread runs beside whatever the worker does next, so it holds up no other job, and it
uses the worker's core, not the server's. (A worker stores them in the cache directory it
started with, the server's.)

The pages take their settings from here (N_BOOT, N_PERMUTATIONS, SEED), and
tests/ui/test_first_visit.py checks that, after `prepare`, no page computes anything on its
first visit: a page whose defaults drift from `analyses` fails it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bnapp.engine.results import INPUT, Layer, RunResult
from bnapp.jobs import cache

N_BOOT = 1000  # bootstrap resamples of the folds for the pages' intervals
N_PERMUTATIONS = 10  # shuffles per unit and fold in the permutation ablation
SEED = 0
# how long the worker waits for the job to store the run (it does so right after the training)
STORE_WAIT_SECONDS = 120.0
logger = logging.getLogger(__name__)

Analysis = tuple[Callable, tuple, dict]


def analyses(run: RunResult) -> list[Analysis]:
    """(function, args, kwargs) of what each page computes on its first visit, in the order of
    the pages: their first layer (the input), first ablation mode, default settings."""
    # imported here: the dashboard's first page imports this module, and these take scipy
    from bnapp.analyses import agreement, catalog, concordance, conformal, explain

    layer = INPUT
    return [
        (catalog.training_curves, (), {}),  # Train
        (catalog.bn_parameters, (layer,), {"ddof": 0}),  # BN parameters
        *((catalog.sensitivity, (layer,),  # Sensitivity: its mode, and both for the 0/mean note
           {"modes": (mode,), "n_permutations": N_PERMUTATIONS, "seed": SEED})
          for mode in ("zero", "mean")),
        (catalog.bn_parameters, (layer,), {}),
        *([(catalog.cumulative_hidden_zero, (Layer.hidden(0),), {})]  # the published figure 5
          if run.spec.hidden_bn else []),
        (concordance.importance_report, (),  # Importance
         {"layers": (layer,), "n_boot": N_BOOT, "seed": SEED}),
        (explain.ice_pdp, (), {"seed": SEED}),
        (catalog.baselines, (), {}),  # Baselines
        (catalog.paired_comparison, (), {}),
        (agreement.agreement_points, (), {}),  # Agreement
        (agreement.agreement, (), {"ci_method": "exact"}),
        (agreement.calibration, (), {}),
        (agreement.run_calibration_curves, (), {}),
        (conformal.held_out_coverage, (conformal.DEFAULT_LEVEL,), {"normalized": False}),
    ]


def prepare(run: RunResult, run_key: str, *, wait: float = STORE_WAIT_SECONDS) -> int:
    """Compute and store every first-visit analysis of the run not stored yet, once the run
    itself is stored (the analysis cache keeps nothing for a run it does not hold). Returns how
    many it computed; a failure only means the page computes that one itself."""
    from bnapp.jobs.runner import analysis_name, cached_analysis

    deadline = time.monotonic() + wait
    while not cache.is_stored(run_key):
        if time.monotonic() > deadline:
            return 0
        time.sleep(0.05)
    computed = 0
    for fn, args, kwargs in analyses(run):
        def compute(fn=fn, args=args, kwargs=kwargs):
            nonlocal computed
            computed += 1
            return fn(run, *args, **kwargs)

        try:
            cached_analysis(run_key, analysis_name(fn), compute, args=args, kwargs=kwargs)
        except Exception:  # noqa: BLE001 - the page computes it (and shows any error) itself
            logger.info("first-visit analysis %s not prepared", analysis_name(fn), exc_info=True)
    return computed
