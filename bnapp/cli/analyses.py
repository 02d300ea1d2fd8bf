"""`reproduce` and `analyze`: the study's analyses as files, from checkpoints or from new training."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pandas as pd

from bnapp import analysis
from bnapp.cli import UserError
from bnapp.cli.options import add_arch_options, spec_from_args
from bnapp.model import ArchSpec
from bnapp.results import RunResult

DEFAULT_SEED_DIR = Path("../shared/seed")
ASSOCIATION_METRICS = ("bias", "delta_mse", "rmse")


def register(sub) -> None:
    rep = sub.add_parser("reproduce", help="the published analysis from the study's checkpoints")
    rep.add_argument("--seed-dir", type=Path, default=DEFAULT_SEED_DIR,
                     help="folder with Urea.csv, folds_*.json, checkpoints/ and published_*.csv")
    rep.add_argument("--out", type=Path, required=True, help="output directory")
    _analysis_options(rep)
    rep.set_defaults(handler=cmd_reproduce)

    ana = sub.add_parser("analyze", help="train (or reuse cached results) and write every analysis")
    ana.add_argument("--data", type=Path, required=True, help="CSV or XLSX data file")
    ana.add_argument("--out", type=Path, required=True, help="output directory")
    add_arch_options(ana)
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
    from bnapp.keras_import import KerasImportError
    from bnapp.reproduce import reproduce, write_reproduction

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
    from bnapp.data import STUDY_INPUTS, STUDY_TARGET, DataError, load_dataset, require_rows
    from bnapp.train import Protocol, TrainingDiverged

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

    def progress(fraction: float, message: str) -> None:
        if sys.stderr.isatty():
            print(f"\r{fraction:6.1%} {message}"[:79].ljust(79), end="", file=sys.stderr)

    X, y = dataset.X(STUDY_INPUTS), dataset.y(STUDY_TARGET)
    try:
        from bnapp.jobs import cached_train

        run = cached_train(X, y, spec, protocol, features=STUDY_INPUTS, target=STUDY_TARGET,
                           data_key=dataset.fingerprint(), row_ids=dataset.row_numbers,
                           progress=progress, data_name=dataset.name)
    except TrainingDiverged as exc:
        raise UserError(str(exc)) from exc
    if sys.stderr.isatty():
        print(file=sys.stderr)
    return run


def analysis_tables(run: RunResult, *, n_permutations: int = 10, n_boot: int = 2000,
                    seed: int = 0) -> dict[str, pd.DataFrame]:
    """Every table `analyze` writes, keyed by file stem."""
    layers = ["input", "hidden"]  # first hidden layer; deeper ones via the library
    per_fold, summary = analysis.bn_parameters(run)
    sens = pd.concat([analysis.sensitivity(run, layer, n_permutations=n_permutations, seed=seed)
                      for layer in layers], ignore_index=True)
    quantiles = pd.concat([analysis.stage_quantiles(analysis.bn_stages(run, layer))
                           .assign(layer=layer) for layer in layers], ignore_index=True)
    loss, gamma = analysis.training_curves(run)
    return {
        "bn_parameters": summary,
        "bn_parameters_per_fold": per_fold,
        "stage_quantiles": quantiles,
        "sensitivity": sens,
        "fit_lines": pd.concat([analysis.fit_lines(sens, m).assign(metric=m)
                                for m in ASSOCIATION_METRICS], ignore_index=True),
        "association": pd.concat([analysis.association(sens, m, n_boot=n_boot, seed=seed)
                                  for m in ASSOCIATION_METRICS], ignore_index=True),
        "baselines": analysis.baselines(run),
        "paired_comparison": analysis.paired_comparison(run),
        "loss_curves": loss,
        "gamma_curves": gamma,
    }


def _figures(run: RunResult, tables: dict[str, pd.DataFrame]) -> dict:
    """Altair charts of the tables; empty when bnapp.charts is not available."""
    try:
        charts = importlib.import_module("bnapp.charts")
    except ModuleNotFoundError as exc:
        if exc.name != "bnapp.charts":
            raise
        return {}
    sens, lines = tables["sensitivity"], tables["fit_lines"]
    figures = {
        "architecture": charts.architecture_chart(run.spec, len(run.features)),
        "parameters": charts.parameter_chart(tables["bn_parameters_per_fold"]),
        "baselines": charts.baseline_chart(tables["baselines"]),
    }
    quantiles = tables["stage_quantiles"]
    for layer in quantiles["layer"].unique():
        figures[f"stages_{layer}"] = charts.stage_boxplot(
            quantiles[quantiles["layer"] == layer].drop(columns="layer"), f"{layer} BN")
    for (layer, mode), _ in sens.dropna(subset=["gamma"]).groupby(["layer", "mode"]):
        line_pick = (lines["layer"] == layer) & (lines["metric"] == "bias")
        figures[f"gamma_vs_bias_{layer}_{mode}"] = charts.gamma_scatter(
            sens[sens["layer"] == layer], lines[line_pick].drop(columns="metric"), "bias", mode)
    if len(tables["loss_curves"]):
        figures["loss"] = charts.loss_curves(tables["loss_curves"])
    if len(tables["gamma_curves"]):
        figures["gamma_trajectories"] = charts.gamma_trajectories(tables["gamma_curves"])
    return figures


def cmd_analyze(args) -> int:
    spec = spec_from_args(args)
    run = _train(args, spec)
    tables = analysis_tables(run, n_permutations=args.permutations, n_boot=args.n_boot,
                             seed=args.seed)
    figures = _figures(run, tables)
    images = {}
    if figures:
        from bnapp.export import chart_png, chart_svg

        images = {name: (chart_png(chart), chart_svg(chart)) for name, chart in figures.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(args.out / f"{name}.csv", index=False)
    for name, (png, svg) in images.items():
        (args.out / f"{name}.png").write_bytes(png)
        (args.out / f"{name}.svg").write_text(svg)
    pooled = tables["baselines"][tables["baselines"]["fold"] == "pooled"]
    print(pooled[["method", "n", "rmse", "mae", "bias", "r2"]].to_string(index=False))
    if not figures:
        print("figures: pending (bnapp.charts is not available yet)", file=sys.stderr)
    print(f"wrote {len(tables)} tables and {len(images)} figures (PNG + SVG) to {args.out}")
    return 0
