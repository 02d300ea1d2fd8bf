"""`reproduce` and `analyze`: the study's analyses as files, from checkpoints or from new training.

The analysis and chart modules (scipy, statsmodels, Altair) are imported by the handlers, so
registering these commands costs nothing to the other commands.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bnapp.cli import UserError
from bnapp.cli.options import add_arch_options, epoch_bar, spec_from_args
from bnapp.engine.model import INPUT_MODES, ArchSpec

if TYPE_CHECKING:
    from bnapp.engine.results import RunResult

DEFAULT_SEED_DIR = Path("../shared/seed")
BOTH = "both"
SIDE_BY_SIDE = "_by_input_mode"  # suffix of the side-by-side files of --mode both


def register(sub) -> None:
    rep = sub.add_parser("reproduce", help="the published analysis from the study's checkpoints")
    rep.add_argument("--seed-dir", type=Path, default=DEFAULT_SEED_DIR,
                     help="folder with Urea.csv, folds_*.json, checkpoints/ and published_*.csv")
    rep.add_argument("--out", type=Path, required=True, help="output directory")
    _analysis_options(rep)
    rep.set_defaults(handler=cmd_reproduce)

    # "resolve": analyze's --mode (below) replaces the shared one, adding "both"
    ana = sub.add_parser("analyze", conflict_handler="resolve",
                         help="train (or reuse cached results) and write every analysis")
    ana.add_argument("--data", type=Path, required=True, help="CSV or XLSX data file")
    ana.add_argument("--out", type=Path, required=True, help="output directory")
    add_arch_options(ana)
    ana.add_argument("--mode", choices=(*INPUT_MODES, BOTH), default="raw",
                     help="network input; both: the same network on raw and on z-scored inputs, "
                          "each analysed in OUT/raw and OUT/zscore, side by side in OUT")
    ana.add_argument("--folds", type=int, default=10, help="k of k-fold cross-validation")
    ana.add_argument("--epochs", type=int, default=200)
    ana.add_argument("--seed", type=int, default=0)
    _analysis_options(ana)
    ana.set_defaults(handler=cmd_analyze)


def _analysis_options(parser) -> None:
    parser.add_argument("--permutations", type=int, default=10,
                        help="shuffles per unit for the permutation ablation")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples for CIs")


def cmd_reproduce(args) -> int:
    from bnapp.analyses.reproduce import reproduce, write_reproduction
    from bnapp.engine.keras_import import KerasImportError

    if not (args.seed_dir / "folds_e2e.json").is_file():
        raise UserError(f"{args.seed_dir}: not the study's seed folder (no folds_e2e.json); "
                        "pass --seed-dir")
    try:
        rep = reproduce(args.seed_dir, n_boot=args.n_boot, n_permutations=args.permutations)
    except (KerasImportError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from exc
    write_reproduction(rep, args.out)
    print(rep.comparison.to_string(index=False))
    print("note: the published hidden-node rows for nodes 2-6 were cumulative (nodes 1..k zeroed "
          "together); sensitivity_hidden_nodes.csv ablates one node at a time, "
          "sensitivity_hidden_nodes_cumulative.csv reproduces the published variant.")
    print(f"wrote {args.out}")
    if not rep.all_match:
        print("error: some numbers differ from the published ones (see comparison.csv)",
              file=sys.stderr)
        return 1
    return 0


def _train(args, spec: ArchSpec) -> RunResult:
    from bnapp.engine.train import Protocol, TrainingDiverged
    from bnapp.intake.data import STUDY_INPUTS, STUDY_TARGET, DataError, load_dataset, require_rows

    if not args.data.is_file():
        raise UserError(f"{args.data}: no such file")
    try:
        protocol = Protocol(kind="kfold", folds=args.folds, epochs=args.epochs, seed=args.seed)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    try:
        dataset = load_dataset(args.data)
        require_rows(dataset, args.folds)
    except DataError as exc:
        raise UserError(str(exc)) from exc

    X, y = dataset.X(STUDY_INPUTS), dataset.y(STUDY_TARGET)
    try:
        from bnapp.jobs.runner import cached_train

        with epoch_bar(spec.label, protocol) as progress:
            run = cached_train(X, y, spec, protocol, features=STUDY_INPUTS, target=STUDY_TARGET,
                               data_key=dataset.fingerprint(), row_ids=dataset.row_numbers,
                               progress=progress, data_name=dataset.name)
    except TrainingDiverged as exc:
        raise UserError(str(exc)) from exc
    return run


def _write(out: Path, tables: dict, figures: dict) -> None:
    from bnapp.report.export import chart_png, chart_svg

    images = {name: (chart_png(chart), chart_svg(chart)) for name, chart in figures.items()}
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    for name, (png, svg) in images.items():
        (out / f"{name}.png").write_bytes(png)
        (out / f"{name}.svg").write_text(svg)
    print(f"wrote {len(tables)} tables and {len(images)} figures (PNG + SVG) to {out}")


def _analyze(args, run: RunResult, out: Path) -> dict:
    from bnapp.report import run_report

    tables = run_report.run_tables(run, n_permutations=args.permutations, n_boot=args.n_boot,
                               seed=args.seed)
    _write(out, tables, run_report.run_figures(run, tables))
    pooled = tables["baselines"][tables["baselines"]["fold"] == "pooled"]
    print(pooled[["method", "n", "rmse", "mae", "bias", "r2"]].to_string(index=False))
    return tables


def cmd_analyze(args) -> int:
    from bnapp.analyses.importance import parameter_tables, side_by_side
    from bnapp.report import run_report

    # spec_from_args reads --mode: give it one it knows, the input mode is set below
    spec = spec_from_args(argparse.Namespace(**{**vars(args), "mode": INPUT_MODES[0]}))
    if args.mode != BOTH:
        _analyze(args, _train(args, replace(spec, input_mode=args.mode)), args.out)
        return 0
    runs = {mode: _train(args, replace(spec, input_mode=mode)) for mode in INPUT_MODES}
    # what compare_input_modes returns, from the tables each run's own analysis computed
    tables = side_by_side({mode: {**_analyze(args, run, args.out / mode), **parameter_tables(run)}
                           for mode, run in runs.items()})
    figures = run_report.gamma_figures(tables["sensitivity"], tables["fit_lines"], spec,
                                   runs["raw"].target, suffix=SIDE_BY_SIDE)
    _write(args.out, {f"{name}{SIDE_BY_SIDE}": table for name, table in tables.items()}, figures)
    return 0
