"""`explain`: Shapley values, integrated gradients and |γ| against every definition of importance.

The analyses (scipy) are imported by the handler, so registering the command costs nothing to
the other commands.
"""

from __future__ import annotations

import sys

from bnapp.analyses.settings import SETTINGS
from bnapp.cli import UserError
from bnapp.cli.options import (
    add_training_options,
    spec_from_args,
    trained_run,
)

INPUT_FILES = {  # file stem -> its columns, for the input layer
    "shapley": ["fold", "row", "unit", "value"],
    "shapley_rows": ["fold", "row", "base_value", "prediction"],
    "integrated_gradients": ["fold", "row", "unit", "value"],
    "integrated_gradients_rows": ["fold", "row", "base_value", "prediction", "completeness_gap"],
    "gradient_x_input": ["fold", "row", "unit", "value"],
}


def register(sub) -> None:
    cmd = sub.add_parser("explain", help="Shapley values, integrated gradients and |γ| against "
                                         "every definition of importance")
    add_training_options(cmd)
    cmd.add_argument("--background", type=int, default=SETTINGS.n_background,
                     help="training rows per fold that Shapley values average over")
    cmd.add_argument("--shapley-permutations", type=int, default=SETTINGS.n_orders,
                     help="sampled permutations (each also reversed) for Shapley values of "
                          "layers with more than 10 units; up to 10, every coalition is exact")
    cmd.add_argument("--ig-baseline", choices=("mean", "zero"), default="mean",
                     help="integrated gradients from the training mean, or from 0 (the study's "
                          "ablation)")
    cmd.add_argument("--permutations", type=int, default=SETTINGS.n_permutations,
                     help="shuffles per unit for the permutation ablation")
    cmd.add_argument("--n-boot", type=int, default=SETTINGS.n_boot,
                     help="bootstrap resamples of the folds for the intervals of --replicates 0")
    cmd.add_argument("--replicates", type=int, default=None,
                     help="bootstrap resamples of the sessions (of the groups with --group-by), "
                          "each with the cross-validation retrained, for intervals that "
                          "describe cohorts like this one (default: 50, down to 25 above "
                          "5,000 sessions; 0: a bootstrap of the folds, which describes this "
                          "data set's folds only)")
    cmd.set_defaults(handler=cmd_explain)


def cmd_explain(args) -> int:
    import pandas as pd

    from bnapp.analyses import cohort_intervals, concordance
    from bnapp.engine.results import network_layers
    from bnapp.report.cells import write_csv

    if min(args.background, args.permutations, args.n_boot, args.shapley_permutations) < 1:
        raise UserError("--background, --permutations, --shapley-permutations and --n-boot "
                        "must be at least 1")
    if args.replicates is not None and (args.replicates < 0 or args.replicates == 1):
        raise UserError("--replicates must be 0 (a bootstrap of the folds) or at least 2")
    spec = spec_from_args(args)
    run, groups, _ = trained_run(args, spec)

    def importance(trained):
        """(importance table of every layer, the input layer's explanations)."""
        tables, explained_inputs = [], None
        for layer in network_layers(spec):
            explained = concordance.explanations(
                trained, layer, n_background=args.background,
                n_orders=args.shapley_permutations, ig_baseline=args.ig_baseline,
                seed=SETTINGS.seed)
            explained_inputs = explained_inputs or explained  # the input layer comes first
            tables.append(concordance.global_importance(
                trained, explained, layer, n_permutations=args.permutations,
                seed=SETTINGS.seed))
        return pd.concat(tables, ignore_index=True), explained_inputs

    both, explained = importance(run)
    files = {stem: explained[stem][columns] for stem, columns in INPUT_FILES.items()}
    wanted = SETTINGS.n_replicates if args.replicates is None else args.replicates
    cohort = None
    if cohort_intervals.default_replicates(len(run.y), wanted):
        print("retraining the cross-validation on bootstrap resamples", file=sys.stderr)
        # the replicates the pages and the export use (the settings' seed; --seed trains)
        replicates = cohort_intervals.run_replicates(run, groups, wanted, SETTINGS.seed)
        cohort = None if replicates is None else replicates.map(lambda r: importance(r)[0])
    # the analyses' seed is the settings', as on the pages and in the export (--seed trains)
    table = concordance.concordance(both, args.n_boot, SETTINGS.seed, cohort=cohort)
    inputs, hidden = both[both["layer"] == "input"], both[both["layer"] == "hidden"]
    files["importance"] = inputs[["fold", "unit", "definition", "importance", "gamma"]]
    files["concordance"] = table[table["layer"] == "input"][
        ["definition", "statistic", "estimate", "ci_low", "ci_high", "n_folds", "interval"]]
    if len(hidden):
        files["importance_hidden"] = hidden
        files["concordance_hidden"] = table[table["layer"] == "hidden"]
    for stem, frame in files.items():
        write_csv(frame, args.out / f"{stem}.csv")
    print(f"{run.label}: |γ| against each definition of importance of the inputs "
          "(mean over folds; 95% intervals over "
          f"{cohort.describes if cohort else cohort_intervals.FOLD_INTERVAL})")
    print(files["concordance"].drop(columns="interval").round(3).to_string(index=False))
    print(f"wrote {len(files)} files to {args.out}")
    return 0
