"""|γ| against importance for every layer of a run, and for a raw and a z-score run side by side.

A run's layers are its input and each of its hidden layers. Tables covering several layers carry
a `hidden_layer` column beside `layer` ("input" or "hidden"): 1, 2, ... for the hidden layers,
empty for the input, so that no statistic pools the nodes of two hidden layers.

Raw versus z-score is the study's figures 3 and 4: one network trained on raw values and, on the
same data, columns and folds, on z-scored values (the study's z-score model kept its input BN),
analysed the same way. The two runs' tables are stacked with an `input_mode` column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from bnapp.analyses.association import ASSOCIATION_METRICS, association, fit_lines
from bnapp.analyses.cohort_intervals import Replicated, run_replicates
from bnapp.analyses.sensitivity import ABLATIONS, sensitivity
from bnapp.analyses.settings import SETTINGS
from bnapp.analyses.stages import bn_parameters
from bnapp.engine.model import INPUT_MODES
from bnapp.engine.results import Layer, RunResult, network_layers

# the tables compare_input_modes stacks, keyed as run_tables keys them
COMPARED_TABLES = ("sensitivity", "fit_lines", "association", "bn_parameters",
                   "bn_parameters_per_fold")


def tag_layer(frame: pd.DataFrame, layer: Layer) -> pd.DataFrame:
    """frame with its layer's `layer` and `hidden_layer` columns (first, or where `layer` is)."""
    out = frame.drop(columns=["layer", "hidden_layer"], errors="ignore")
    at = frame.columns.get_loc("layer") if "layer" in frame.columns else 0
    number = pd.NA if layer.number is None else layer.number
    out.insert(at, "layer", layer.kind)
    out.insert(at + 1, "hidden_layer", pd.array([number] * len(out), dtype="Int64"))
    return out


def layer_rows(frame: pd.DataFrame, layer: Layer) -> pd.DataFrame:
    """The rows of one layer of a table tagged by tag_layer."""
    pick = frame["layer"] == layer.kind
    if layer.kind == "hidden":
        pick &= (frame["hidden_layer"] == layer.number).fillna(False)
    return frame[pick]


def _concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(list(frames), ignore_index=True)


def layers_sensitivity(run: RunResult, layers: Sequence[Layer], ablations: tuple[str, ...],
                       n_permutations: int, seed: int) -> pd.DataFrame:
    """The sensitivity table of every layer given, tagged."""
    return _concat(tag_layer(sensitivity(run, layer, ablations, n_permutations, seed), layer)
                   for layer in layers)


def replicates_sensitivity(replicates: Replicated, layers: Sequence[Layer],
                           ablations: tuple[str, ...], n_permutations: int,
                           seed: int) -> Replicated:
    """layers_sensitivity of every replicate run, computed once for the replicates however
    many analyses ask (importance_tables' association, importance_report's concordance)."""
    return replicates.shared(("sensitivity", tuple(layers), ablations, n_permutations, seed),
                             lambda r: layers_sensitivity(r, layers, ablations, n_permutations,
                                                          seed))


def importance_tables(run: RunResult, layers: Sequence[Layer] | None = None, *,
                      ablations: Iterable[str] = ABLATIONS,
                      metrics: Iterable[str] = ASSOCIATION_METRICS,
                      n_permutations: int = SETTINGS.n_permutations,
                      n_boot: int = SETTINGS.n_boot,
                      seed: int = SETTINGS.seed, groups=None,
                      n_replicates: int = SETTINGS.n_replicates,
                      replicates: Replicated | None = None) -> dict[str, pd.DataFrame]:
    """Sensitivity, fitted lines and association of each layer (default: every layer), tagged.

    {"sensitivity", "fit_lines" (with a `metric` column), "association"}. The association
    intervals describe cohorts like this one, from `replicates` (the runs of
    bnapp.analyses.cohort_intervals.replicate_runs, when already trained) or else from
    run_replicates(run, groups, n_replicates); with none they describe its folds.
    """
    layers = network_layers(run.spec) if layers is None else list(layers)
    if replicates is None:
        replicates = run_replicates(run, groups, n_replicates, seed)
    ablations, metrics = tuple(ablations), tuple(metrics)
    sens = layers_sensitivity(run, layers, ablations, n_permutations, seed)
    cohort = (None if replicates is None
              else replicates_sensitivity(replicates, layers, ablations, n_permutations, seed))
    return {
        "sensitivity": sens,
        "fit_lines": _concat(fit_lines(sens, m).assign(metric=m) for m in metrics),
        "association": _concat(association(sens, m, n_boot=n_boot, seed=seed, cohort=cohort)
                               for m in metrics),
    }


def parameter_tables(run: RunResult, layers: Sequence[Layer] | None = None,
                     ddof: int = 0) -> dict[str, pd.DataFrame]:
    """BN parameters of each layer (default: every layer), tagged:
    {"bn_parameters" (mean and SD over folds), "bn_parameters_per_fold"}."""
    layers = network_layers(run.spec) if layers is None else list(layers)
    found = [(layer, bn_parameters(run, layer, ddof=ddof)) for layer in layers]
    return {"bn_parameters": _concat(tag_layer(s, layer) for layer, (_, s) in found),
            "bn_parameters_per_fold": _concat(tag_layer(p, layer) for layer, (p, _) in found)}


def comparison_problem(raw: RunResult, zscore: RunResult) -> str | None:
    """Why the two runs are not the same network, data and folds on raw and on z-scored inputs,
    or None when they are."""
    if (raw.spec.input_mode, zscore.spec.input_mode) != INPUT_MODES:
        return (f"the runs are on {raw.spec.input_mode} and {zscore.spec.input_mode} inputs; "
                "give a raw run and a z-score run")
    if replace(zscore.spec, input_mode="raw") != raw.spec:
        return (f"they are different networks ({raw.spec.label} and {zscore.spec.label}); train "
                "the same network on both input modes")
    if raw.protocol != zscore.protocol:
        return "they were trained under different protocols, so their folds differ"
    same_data = (list(raw.features) == list(zscore.features) and raw.target == zscore.target
                 and raw.X.shape == zscore.X.shape and np.array_equal(raw.X, zscore.X)
                 and np.array_equal(raw.y, zscore.y))
    if not same_data:
        return "they were trained on different data or columns"
    return None


def side_by_side(tables: Mapping[str, Mapping[str, pd.DataFrame]],
                 names: Iterable[str] = COMPARED_TABLES) -> dict[str, pd.DataFrame]:
    """{input mode: {name: table}} -> {name: the tables of every mode stacked, input_mode first}."""
    return {name: _concat(t[name].assign(input_mode=mode)[["input_mode", *t[name].columns]]
                          for mode, t in tables.items())
            for name in names}


def compare_input_modes(raw: RunResult, zscore: RunResult,
                        layers: Sequence[Layer] | None = None, *,
                        ablations: Iterable[str] = ABLATIONS,
                        metrics: Iterable[str] = ASSOCIATION_METRICS,
                        n_permutations: int = SETTINGS.n_permutations,
                        n_boot: int = SETTINGS.n_boot,
                        seed: int = SETTINGS.seed,
                        n_replicates: int = SETTINGS.n_replicates) -> dict[str, pd.DataFrame]:
    """Study figures 3 and 4: the same analyses of a raw-input run and a z-score run of one
    network, data and protocol, stacked with an `input_mode` column ("raw", "zscore").

    {"sensitivity", "fit_lines", "association", "bn_parameters", "bn_parameters_per_fold"} for
    the layers given (default: every layer); the association is computed within each input mode.
    A ValueError says why two runs cannot be compared.
    """
    problem = comparison_problem(raw, zscore)
    if problem is not None:
        raise ValueError(f"cannot compare the input modes: {problem}")
    ablations, metrics = tuple(ablations), tuple(metrics)
    return side_by_side({
        run.spec.input_mode: {
            **importance_tables(run, layers, ablations=ablations, metrics=metrics,
                                n_permutations=n_permutations, n_boot=n_boot, seed=seed,
                                n_replicates=n_replicates),
            **parameter_tables(run, layers)}
        for run in (raw, zscore)})
