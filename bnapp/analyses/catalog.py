"""Every analysis of a cross-validated run, as tidy DataFrames (one import for UI and CLI).

The computations live in modules named for what they hold; this module re-exports them.
"""

from __future__ import annotations

from bnapp.analyses.association import association, fit_lines
from bnapp.analyses.baselines import baselines, fold_predictions, paired_comparison, quality
from bnapp.analyses.sensitivity import (
    METRICS,
    MODES,
    cumulative_hidden_zero,
    error_metrics,
    sensitivity,
)
from bnapp.analyses.stages import (
    STAGES,
    bn_parameters,
    bn_stages,
    stage_quantiles,
    stage_summary,
    training_curves,
)

__all__ = [
    "METRICS",
    "MODES",
    "STAGES",
    "association",
    "baselines",
    "bn_parameters",
    "bn_stages",
    "cumulative_hidden_zero",
    "error_metrics",
    "fit_lines",
    "fold_predictions",
    "paired_comparison",
    "quality",
    "sensitivity",
    "stage_quantiles",
    "stage_summary",
    "training_curves",
]
