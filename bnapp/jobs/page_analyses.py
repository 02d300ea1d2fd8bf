"""What the dashboard's pages compute for a run, declared once, and their first visits prepared.

Each function below is one analysis as a page asks for it (a `Call`); the pages compute through
these (`ui.widgets.compute_call`), and FIRST_VISIT lists, page by page, the calls a page makes
when it first shows a run (its first layer, ablation and settings). Once the run is trained
and stored, a worker process computes those in a call of its own
(bnapp.jobs.training_worker) into the analysis cache beside the run, so a page reads them from
disk instead of computing while the user waits. That worker call holds up no other job (one
arriving gets another worker) and uses a worker's core, not the server's. A page visited while
the cohort intervals are still being prepared shows the folds' intervals meanwhile
(`ui.widgets.compute_soon`). tests/ui/test_first_visit.py checks that, after
`prepare`, no page computes anything on its first visit.

The analyses are imported inside the functions: the dashboard's first page imports this module,
and they take scipy.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bnapp.engine.results import FIRST_HIDDEN, INPUT, Layer, RunResult
from bnapp.intake.duration import STUDY_ACCESS, STUDY_HOURS
from bnapp.jobs import cache

# how long the worker waits for the job to store the run (it does so right after the training)
STORE_WAIT_SECONDS = 120.0
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """fn(run, *args, **kwargs): one analysis of a run."""

    fn: Callable
    args: tuple = ()
    kwargs: Mapping[str, object] = field(default_factory=dict)

    def without_replicates(self) -> Call:
        """The same analysis with the intervals of the run's folds instead of cohorts like it
        (no retrained replicates: a tenth of a second instead of seconds)."""
        return Call(self.fn, self.args, {**self.kwargs, "n_replicates": 0})


# ------------------------------------------------------------------------------- the pages' calls

# the formulas' session length (hours: one, or one per row of the run) and vascular access
# default to the study's (STUDY_HOURS, STUDY_ACCESS), the keys of the first visits


def _length(t_hours, access: str) -> dict[str, object]:
    return {"t_hours": t_hours, "access": access}


def training_curves() -> Call:
    from bnapp.analyses import stages

    return Call(stages.training_curves)


def held_out_errors() -> Call:
    from bnapp.analyses import stages

    return Call(stages.held_out_errors)


def bn_parameters(layer: Layer, *, sample_sd: bool = False) -> Call:
    from bnapp.analyses import stages

    return Call(stages.bn_parameters, (layer,), {"ddof": int(sample_sd)})


def ablation(layer: Layer, mode: str) -> Call:
    """One ablation mode at a time: permutation costs n_permutations times the others."""
    from bnapp.analyses import sensitivity

    return Call(sensitivity.sensitivity, (layer,), {"ablations": (mode,)})


def cumulative_ablation(layer: Layer) -> Call:
    from bnapp.analyses import sensitivity

    return Call(sensitivity.cumulative_hidden_zero, (layer,))


def run_groups(run: RunResult, groups) -> tuple[str, ...] | None:
    """What the cohort intervals of a run resample by: a grouped run's labels (as text, one
    spelling for the page and the worker, whatever container they came in), else None."""
    if groups is None or run.protocol.get("group_by") is None:
        return None
    return tuple(str(v) for v in groups)


def importance(layer: Layer, groups: tuple[str, ...] | None = None) -> Call:
    from bnapp.analyses import concordance

    return Call(concordance.importance_report, kwargs={"layers": (layer,), "groups": groups})


def ablation_report(layer: Layer, mode: str, metric: str,
                    groups: tuple[str, ...] | None = None) -> Call:
    """The association and the verdict of one ablation and error measure (cohort intervals)."""
    from bnapp.analyses import verdict

    return Call(verdict.ablation_report, (layer, mode, metric), {"groups": groups})


def ice_pdp() -> Call:
    from bnapp.analyses import explain

    return Call(explain.ice_pdp)


def baselines(t_hours=STUDY_HOURS, access: str = STUDY_ACCESS) -> Call:
    from bnapp.analyses import baselines

    return Call(baselines.baselines, kwargs=_length(t_hours, access))


def paired_comparison(t_hours=STUDY_HOURS, access: str = STUDY_ACCESS) -> Call:
    from bnapp.analyses import baselines

    return Call(baselines.paired_comparison, kwargs=_length(t_hours, access))


def agreement_points(t_hours=STUDY_HOURS, access: str = STUDY_ACCESS) -> Call:
    from bnapp.analyses import agreement

    return Call(agreement.agreement_points, kwargs=_length(t_hours, access))


def agreement(ci_method: str, t_hours=STUDY_HOURS, access: str = STUDY_ACCESS) -> Call:
    from bnapp.analyses import agreement

    return Call(agreement.agreement, kwargs={"ci_method": ci_method,
                                             **_length(t_hours, access)})


def share_within(tolerance: float, dose_tolerance: float, t_hours=STUDY_HOURS,
                 access: str = STUDY_ACCESS) -> Call:
    from bnapp.analyses import agreement

    return Call(agreement.share_within, (tolerance, dose_tolerance), _length(t_hours, access))


def calibration(t_hours=STUDY_HOURS, access: str = STUDY_ACCESS) -> Call:
    from bnapp.analyses import agreement

    return Call(agreement.calibration, kwargs=_length(t_hours, access))


def calibration_curves(t_hours=STUDY_HOURS, access: str = STUDY_ACCESS) -> Call:
    from bnapp.analyses import agreement

    return Call(agreement.run_calibration_curves, kwargs=_length(t_hours, access))


def coverage(level: float, t_hours=STUDY_HOURS, access: str = STUDY_ACCESS, *,
             normalized: bool) -> Call:
    from bnapp.analyses import conformal

    return Call(conformal.held_out_coverage, (level,),
                {"normalized": normalized, **_length(t_hours, access)})


# ------------------------------------------------------------------------------- first visits

# the Sensitivity page opens on the fair definition: permuted units, ΔMSE
FIRST_ABLATION, FIRST_METRIC = "permutation", "delta_mse"


def _sensitivity(run: RunResult, groups) -> list[Call]:
    calls = [ablation(INPUT, FIRST_ABLATION),
             ablation_report(INPUT, FIRST_ABLATION, FIRST_METRIC, groups)]
    return calls + ([cumulative_ablation(FIRST_HIDDEN)] if run.spec.hidden_bn else [])


def _agreement(run: RunResult, groups) -> list[Call]:
    from bnapp.analyses.agreement import TOLERANCES, default_tolerance
    from bnapp.analyses.conformal import DEFAULT_LEVEL

    return [agreement_points(), agreement("exact"),
            share_within(default_tolerance(run), TOLERANCES["eKtV"]), calibration(),
            calibration_curves(), coverage(DEFAULT_LEVEL, normalized=False)]


# page -> its first-visit calls for a run and its group labels (run_groups)
FIRST_VISIT: dict[str, Callable[[RunResult, tuple[str, ...] | None], list[Call]]] = {
    "train": lambda run, groups: [training_curves(), held_out_errors(), baselines(),
                                  paired_comparison()],
    "parameters": lambda run, groups: [bn_parameters(INPUT)],
    "sensitivity": _sensitivity,
    "importance": lambda run, groups: [importance(INPUT, groups), ice_pdp()],
    "baselines": lambda run, groups: [baselines(), paired_comparison()],
    "agreement": _agreement,
}


def first_visit(run: RunResult, groups=None) -> list[Call]:
    """Every page's first-visit calls, in the order of the pages, those that retrain cohort
    replicates last (groups: the labels a grouped run was trained with). Seconds each, they
    would keep the pages after them (Agreement) waiting, while a page visited before they are
    in shows the folds' intervals meanwhile (ui.widgets.compute_soon)."""
    labels = run_groups(run, groups)
    calls = [call for page in FIRST_VISIT.values() for call in page(run, labels)]
    return sorted(calls, key=_retrains)  # stable: the pages' order otherwise


def _retrains(call: Call) -> bool:
    """Whether the call retrains the run's cohort replicates (an n_replicates not set to 0)."""
    return (call.kwargs.get("n_replicates", 1) != 0
            and "n_replicates" in inspect.signature(call.fn).parameters)


def prepare(run: RunResult, run_key: str, groups=None, *,
            wait: float = STORE_WAIT_SECONDS) -> int:
    """Compute and store every first-visit analysis of the run not stored yet, once the run
    itself is stored (the analysis cache keeps nothing for a run it does not hold). Returns how
    many it computed; a failure only means the page computes that one itself."""
    deadline = time.monotonic() + wait
    while not cache.is_stored(run_key):
        if time.monotonic() > deadline:
            return 0
        time.sleep(0.05)
    computed = 0
    for call in first_visit(run, groups):
        if cache.has_analysis(run_key, cache.call_key(run_key, call.fn, call.args, call.kwargs)):
            continue
        try:
            cache.cached_analysis(run_key, call.fn, run, *call.args, **call.kwargs)
            computed += 1
        except Exception:  # noqa: BLE001 - the page computes it (and shows any error) itself
            logger.info("first-visit analysis %s not prepared", cache.analysis_name(call.fn),
                        exc_info=True)
    return computed
