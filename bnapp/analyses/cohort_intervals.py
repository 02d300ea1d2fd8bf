"""Intervals that describe cohorts like the user's: a bootstrap of sessions that retrains the CV.

A statistic of a trained run (Spearman of |γ| against an importance, the share of folds that
name the same top unit, ...) varies from one cohort to the next for two reasons: the sessions
drawn, and the training (initial weights, batch orders) that those sessions lead to. The folds
of one run show neither: they share most of their training rows and one data set. So each
replicate here draws the run's units with replacement (sessions; whole groups when the protocol
is grouped), cuts the replicate into folds by the run's protocol with every copy of a unit on
the same side (a session drawn twice never tests a model it trained), retrains every fold from
new initial weights, and recomputes the statistic. All replicates' models train as one stack.

The interval is estimate ± t(B-1) × SD of the replicates' statistics, clipped to the statistic's
range: centred on the run's own estimate because a replicate trains on ~63% distinct sessions,
which shifts statistics of a fitted network (the spread is what the replicates are for), with
Student's t for the B replicates' uncertainty about that spread. docs/statistics.md
says why this method and what it was measured to cover.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from bnapp.analyses.settings import SETTINGS
from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import GROUPED_KINDS, Protocol, group_codes, group_hash, grouped
from bnapp.engine.results import RunResult
from bnapp.engine.train import Split, make_splits, train_runs

# 50: the SD to ~10% (t(49) widens the interval by 2% for what is left), and every interval of
# a 10-fold run on the study's 109 sessions in ~10 s on 2 cores (docs/performance.md)
N_REPLICATES = SETTINGS.n_replicates
MIN_REPLICATES = 25  # large cohorts: t(24) widens the interval by 5% for the SD's uncertainty
REPLICATE_ROWS = 250_000  # sessions retrained (summed over replicates) default_replicates allows
BOUNDS = (-1.0, 1.0)  # a correlation's range; others are given per statistic
INTERVAL_COLUMNS = ("ci_low", "ci_high", "interval")


def default_replicates(n_rows: int, most: int = N_REPLICATES) -> int:
    """`most` replicates, fewer for large cohorts (each replicate retrains the whole CV), never
    fewer than MIN_REPLICATES; 0 for a cohort so large that MIN_REPLICATES would retrain more
    than REPLICATE_ROWS sessions (over 10,000: its intervals are the folds')."""
    affordable = REPLICATE_ROWS // max(n_rows, 1)
    if affordable < MIN_REPLICATES or most < 2:
        return 0
    return int(min(affordable, most))


def describes(n_replicates: int, grouped_by: str | None = None) -> str:
    """What a cohort interval describes, in words (the tables' `interval` column)."""
    units = f"{grouped_by} groups" if grouped_by else "sessions"
    return (f"cohorts like this one ({n_replicates} bootstrap resamples of the {units}, "
            "the cross-validation retrained on each)")


FOLD_INTERVAL = ("this data set's folds only (a bootstrap of its folds: narrower than across "
                 "cohorts like it)")


@dataclass(frozen=True)
class Cohort:
    """What a run was trained on and how, to train it again on resamples of its units."""

    X: np.ndarray
    y: np.ndarray
    spec: ArchSpec
    protocol: Protocol
    features: tuple[str, ...]
    target: str = "Ueq"
    groups: np.ndarray | None = None  # one label per row; required by a grouped protocol

    @classmethod
    def of_run(cls, run: RunResult, groups=None) -> Cohort:
        protocol = Protocol.from_dict(run.protocol)
        grouped_run = protocol.kind in GROUPED_KINDS
        if grouped_run and (groups is None or group_hash(groups) != protocol.group_hash):
            raise ValueError(f"the run's folds keep {protocol.group_by!r} groups together: pass "
                             "that column's labels (groups=), the ones it was trained with")
        return cls(run.X, run.y, run.spec, protocol, tuple(run.features), run.target,
                   np.asarray(groups, dtype=object) if grouped_run else None)

    def unit_codes(self) -> np.ndarray:
        """Each row's unit (what a replicate draws): its session, or its group's number."""
        if self.groups is None:
            return np.arange(len(self.y))
        return group_codes(self.groups, len(self.y))[1]


class _Units:
    """The rows of each unit, to expand drawn units into rows without a loop over units."""

    def __init__(self, codes: np.ndarray):
        self.codes = codes
        self.order = np.argsort(codes, kind="stable")
        self.size = np.bincount(codes)
        self.start = np.cumsum(self.size) - self.size

    def rows(self, units: np.ndarray) -> np.ndarray:
        """The rows of every unit in `units` (repeats included), in that order."""
        lengths = self.size[units]
        offset = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return self.order[np.repeat(self.start[units], lengths) + offset]


def replicate_splits(protocol: Protocol, units: _Units, drawn: np.ndarray,
                     seed: int) -> list[Split]:
    """The folds of one replicate (drawn: its unit codes, with repeats), as rows of the cohort.

    Folds are cut over the distinct drawn units by the protocol's own rule (seeded anew), so all
    copies of a unit fall on one side; a grouped protocol gets at most as many folds as groups
    were drawn (leave-one-group-out: one per drawn group)."""
    distinct, copies = np.unique(drawn, return_counts=True)
    protocol = replace(protocol, seed=seed)
    if protocol.kind not in GROUPED_KINDS:
        def expand(part: np.ndarray) -> np.ndarray:
            return units.rows(np.repeat(distinct[part], copies[part]))

        return [Split(s.repeat, s.fold, expand(s.train), expand(s.val), expand(s.test))
                for s in make_splits(protocol, len(distinct))]
    rows = units.rows(np.repeat(distinct, copies))
    labels = units.codes[rows]
    protocol = grouped(replace(protocol, folds=min(protocol.folds, len(distinct))),
                       protocol.kind, protocol.group_by, labels)
    return [Split(s.repeat, s.fold, rows[s.train], rows[s.val], rows[s.test])
            for s in make_splits(protocol, len(rows), labels)]


@dataclass(frozen=True)
class Replicated:
    """One thing per bootstrap replicate of a cohort (its run, or a table computed from it), and
    in words what their spread describes: an analysis's `cohort=` argument."""

    items: list
    describes: str
    _shared: dict = field(default_factory=dict, compare=False, repr=False)

    def map(self, fn: Callable) -> Replicated:
        return Replicated([fn(item) for item in self.items], self.describes)

    def shared(self, key, fn: Callable) -> Replicated:
        """map(fn), computed once per key for these replicates: what two analyses both need of
        every replicate (the sensitivity tables of association and concordance)."""
        if key not in self._shared:
            self._shared[key] = self.map(fn)
        return self._shared[key]


def run_replicates(run: RunResult, groups=None, n_replicates: int = N_REPLICATES,
                   seed: int = SETTINGS.seed) -> Replicated | None:
    """The replicates behind a run's cohort intervals (default_replicates of its size), or None
    when it gets none (n_replicates 0, too many sessions, or a grouped run without the labels it
    was trained with): its intervals are then the folds'. groups: a grouped run's labels."""
    n = default_replicates(len(run.y), n_replicates)
    grouped_run = run.protocol.get("kind") in GROUPED_KINDS
    if not n or (grouped_run and (groups is None
                                  or group_hash(groups) != run.protocol.get("group_hash"))):
        return None  # without the labels it was trained with, a grouped run's folds only
    key = (_run_digest(run), group_hash(groups) if grouped_run else None, n, seed)
    with _recent_lock:
        found = _recent.get(key)
    if found is None:
        found = replicate_runs(Cohort.of_run(run, groups), n, seed)
        with _recent_lock:
            _recent[key] = found
            while len(_recent) > RECENT_RUNS:
                _recent.pop(next(iter(_recent)))
    # a Replicated of its own (the same runs): its shared tables do not leak between callers
    return Replicated(found.items, found.describes)


# the replicates of the last few runs, per process: a run's pages (and the worker preparing
# them) ask for its replicates in several analyses, which would otherwise retrain them each
RECENT_RUNS = 4
_recent: dict = {}
_recent_lock = threading.Lock()


def _run_digest(run: RunResult) -> str:
    """What decides a run's replicates: its data, architecture and protocol."""
    h = hashlib.sha256()
    for part in (run.X, run.y):
        h.update(np.ascontiguousarray(part).tobytes())
    h.update(repr((run.spec, sorted(run.protocol.items()), tuple(run.features))).encode())
    return h.hexdigest()


def replicate_runs(cohort: Cohort, n_replicates: int = N_REPLICATES,
                   seed: int = 0) -> Replicated:
    """n_replicates runs, each the cohort's cross-validation retrained on a bootstrap resample
    of its units. A replicate's fold rows index the cohort's X and y and repeat where a unit was
    drawn more than once; its models start from their own initial weights."""
    if n_replicates < 2:
        raise ValueError(f"a cohort interval needs at least 2 replicates, not {n_replicates}")
    codes = cohort.unit_codes()
    units = _Units(codes)
    n_units = len(units.size)
    rng = np.random.default_rng([seed, cohort.protocol.seed, 26])
    repeats = cohort.protocol.repeats if cohort.protocol.kind == "repeated" else 1
    splits, owner = [], []
    for b in range(n_replicates):
        drawn = rng.integers(0, n_units, n_units)
        while len(np.unique(drawn)) < 2:  # one unit drawn n times: no folds to cut, draw again
            drawn = rng.integers(0, n_units, n_units)
        for s in replicate_splits(cohort.protocol, units, drawn, int(rng.integers(2**31))):
            # the split's repeat tells the replicates' initial weights apart (model_rngs)
            splits.append(replace(s, repeat=b * repeats + s.repeat))
            owner.append(b)
    training = replace(cohort.protocol, seed=int(rng.integers(2**31)))
    stacked = train_runs(cohort.X, cohort.y, [cohort.spec], training, features=cohort.features,
                         target=cohort.target, splits=splits)[0]
    folds = [[] for _ in range(n_replicates)]
    for b, fold in zip(owner, stacked.folds, strict=True):
        folds[b].append(replace(fold, fold=len(folds[b]), repeat=fold.repeat % repeats))
    return Replicated([replace(stacked, folds=f, protocol=cohort.protocol.to_dict())
                       for f in folds], describes(n_replicates, cohort.protocol.group_by))


def _limits(estimate, sd, n, level: float):
    """estimate ± t(n-1) × sd."""
    from scipy import stats  # not at import: association, imported by every page, imports this

    half = stats.t.ppf(0.5 + level / 2, np.maximum(np.asarray(n) - 1, 1)) * sd
    return estimate - half, estimate + half


def with_intervals(table: pd.DataFrame, replicated: Replicated, keys: Sequence[str],
                   level: float = 0.95,
                   bounds: Mapping[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """table (keys, estimate, ...) with ci_low, ci_high and interval (its words) from the
    spread of `estimate` over the same table computed on each replicate (replicated.items, rows
    matched by keys): estimate ± t(B-1) × the SD of the B replicates that define it (NaN for
    fewer than 2), clipped to the statistic's range.

    bounds: a statistic's range by the value of the `statistic` key (default BOUNDS)."""
    keys = list(keys)
    finite = pd.concat([t[[*keys, "estimate"]] for t in replicated.items], ignore_index=True)
    finite = finite[np.isfinite(finite["estimate"].to_numpy(float))]
    spread = (finite.groupby(keys, sort=False, dropna=False)["estimate"]
              .agg(sd=lambda v: v.std(ddof=1), n="size").reset_index())
    out = table.drop(columns=[c for c in INTERVAL_COLUMNS if c in table.columns])
    found = out[keys].merge(spread, on=keys, how="left")
    n = found["n"].fillna(0).to_numpy()
    sd = np.where(n > 1, found["sd"].to_numpy(float), np.nan)
    low, high = _limits(out["estimate"].to_numpy(float), sd, n, level)
    named = out["statistic"] if "statistic" in out.columns else [None] * len(out)
    limits = np.array([(bounds or {}).get(s, BOUNDS) for s in named], float).reshape(-1, 2)
    return out.assign(ci_low=np.clip(low, limits[:, 0], limits[:, 1]),
                      ci_high=np.clip(high, limits[:, 0], limits[:, 1]),
                      interval=replicated.describes)


def cohort_interval(cohort: Cohort, statistic: Callable[[RunResult], pd.Series], *,
                    run: RunResult | None = None, n_replicates: int = N_REPLICATES,
                    level: float = 0.95, seed: int = 0,
                    bounds: tuple[float, float] = (-np.inf, np.inf)) -> pd.DataFrame:
    """A statistic of a run (a Series of named values) with its cohort intervals:
    DataFrame[statistic (the names), estimate, ci_low, ci_high, interval].

    run: the cohort's own run (default: trained here by its protocol)."""
    if run is None:
        run = train_runs(cohort.X, cohort.y, [cohort.spec], cohort.protocol,
                         features=cohort.features, target=cohort.target,
                         groups=cohort.groups)[0]

    def table(values: pd.Series) -> pd.DataFrame:
        return pd.DataFrame({"statistic": values.index, "estimate": values.to_numpy(float)})

    replicated = replicate_runs(cohort, n_replicates, seed).map(lambda r: table(statistic(r)))
    names = table(statistic(run))
    return with_intervals(names, replicated, ["statistic"], level,
                          dict.fromkeys(names["statistic"], bounds))
