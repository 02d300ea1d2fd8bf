"""How much the analyses resample, and with which seed: one set of values for the whole app.

The analyses' signatures take their defaults from SETTINGS, and the pages, the first-visit
preparation, the Export page, the HTML report and the CLI's options read the same object, so
one run shows the same numbers on its pages, in its export and from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AnalysisSettings:
    """The analyses' resampling sizes, interval level and seed."""

    # bootstrap resamples of the folds behind every interval over folds: the association of
    # |γ| with the ablation error, the concordance of |γ| with each definition of importance
    n_boot: int = 2000
    # permutation ablation: shuffles of one unit's values across a fold's test rows (their
    # errors pooled)
    n_permutations: int = 10
    # Shapley values of a layer above explain.EXACT_MAX_UNITS units: sampled orders of the
    # units, each also reversed (exact below)
    n_orders: int = 100
    # Shapley values: the fold's training rows drawn as the background a missing unit is
    # averaged over
    n_background: int = 100
    # bootstrap resamples of the sessions (of the groups under a grouped protocol), the
    # cross-validation retrained on each, behind the intervals about |γ| and importance that
    # describe cohorts like the user's (bnapp.analyses.cohort_intervals; fewer for large data
    # sets, none above 10,000 sessions, 0: the folds' bootstrap instead)
    n_replicates: int = 50
    # coverage the prediction intervals aim at (split-conformal and CV+)
    interval_level: float = 0.9
    # seed of every draw above (and of the rows ICE curves and explanations sample)
    seed: int = 0


SETTINGS = AnalysisSettings()
