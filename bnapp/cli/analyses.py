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

from bnapp.analyses.settings import SETTINGS
from bnapp.cli import UserError
from bnapp.cli.options import add_training_options, spec_from_args, trained_run
from bnapp.engine.model import INPUT_MODES

if TYPE_CHECKING:
    from bnapp.engine.results import RunResult
    from bnapp.intake.duration import SessionLength
    from bnapp.intake.units import DisplayUnits

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

    ana = sub.add_parser("analyze",
                         help="train (or reuse cached results) and write every analysis")
    add_training_options(ana, folds=10, epochs=200, modes=(*INPUT_MODES, BOTH),
                         mode_help="network input; both: the same network on raw and on z-scored "
                                   "inputs, each analysed in OUT/raw and OUT/zscore, side by side "
                                   "in OUT")
    ana.add_argument("--interval", type=float, default=SETTINGS.interval_level,
                     help="level of the prediction intervals: coverage.csv reports that of "
                          "the CV+ intervals new sessions get (nested) and of the held-out "
                          "split-conformal ones in predictions.csv (default %(default)s)")
    _analysis_options(ana)
    ana.add_argument("--show-units", default="mg/dL", metavar="UNITS",
                     help="the urea unit of the tables, figures and model card: mg/dL, mmol/L "
                          "or BUN (BUN mg/dL); the analyses run on mg/dL (default %(default)s)")
    ana.add_argument("--minutes", type=float, default=None,
                     help="every session's length in minutes, for the clinical formulas and "
                          "eKt/V (default 240, the study's)")
    ana.add_argument("--length-column", default=None, metavar="COLUMN",
                     help="a column of --data with each session's length, in minutes or hours "
                          "(told by its name, else its values); replaces --minutes")
    ana.add_argument("--access", default="arterial",
                     help="vascular access of the sessions for the rate equation and eKt/V: "
                          "arterial or venous (default %(default)s)")
    ana.set_defaults(handler=cmd_analyze)


def _analysis_options(parser) -> None:
    parser.add_argument("--permutations", type=int, default=SETTINGS.n_permutations,
                        help="shuffles per unit for the permutation ablation")
    parser.add_argument("--n-boot", type=int, default=SETTINGS.n_boot,
                        help="bootstrap resamples for CIs")


def cmd_reproduce(args) -> int:
    from bnapp.analyses.reproduce import reproduce, write_reproduction
    from bnapp.engine.keras_import import KerasImportError
    from bnapp.report.cells import write_csv

    if not (args.seed_dir / "folds_e2e.json").is_file():
        raise UserError(f"{args.seed_dir}: not the study's seed folder (no folds_e2e.json); "
                        "pass --seed-dir")
    try:
        rep = reproduce(args.seed_dir, n_boot=args.n_boot, n_permutations=args.permutations)
    except (KerasImportError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from exc
    write_reproduction(rep, args.out, write_csv)
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


def _write(out: Path, tables: dict, figures: dict) -> None:
    from bnapp.report.cells import write_csv
    from bnapp.report.export import chart_png, chart_svg

    images = {name: (chart_png(chart), chart_svg(chart)) for name, chart in figures.items()}
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        write_csv(table, out / f"{name}.csv")
    for name, (png, svg) in images.items():
        (out / f"{name}.png").write_bytes(png)
        (out / f"{name}.svg").write_text(svg)
    print(f"wrote {len(tables)} tables and {len(images)} figures (PNG + SVG) to {out}")


def _shown_as(args) -> tuple[DisplayUnits, SessionLength]:
    """--show-units and the session length options, checked before any training."""
    from bnapp.intake.duration import DEFAULT_MINUTES, SessionLength
    from bnapp.intake.units import DisplayUnits

    minutes = DEFAULT_MINUTES if args.minutes is None else args.minutes
    try:  # DataError is a ValueError
        return (DisplayUnits(args.show_units),
                SessionLength(args.length_column, minutes, args.access))
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def _export_options(args, dataset) -> dict:
    """run_report.export_options of the command: its units and each session's length."""
    from bnapp.intake.duration import session_hours
    from bnapp.intake.reading import DataError
    from bnapp.report import run_report

    display, length = _shown_as(args)
    try:
        hours = session_hours(dataset, length) if length.column else length.minutes / 60
    except DataError as exc:
        raise UserError(str(exc)) from exc
    return run_report.export_options(display, length.column, n_permutations=args.permutations,
                                     n_boot=args.n_boot, t_hours=hours, access=length.access)


def _analyze(args, run: RunResult, out: Path, dataset, groups=None) -> dict:
    """Every table (shown in --show-units) and figure of the run in out, its model card, and
    groups.csv when the run is grouped; returns the tables in library units."""
    from bnapp.report import export, model_card, run_report

    options = _export_options(args, dataset)
    shown = run_report.presentation(options)  # units and session lengths
    # the analyses' seed is the settings', as on the pages and in the export (--seed trains)
    tables = run_report.run_tables(run, **run_report.table_options(options),
                                   interval=args.interval, groups=groups)
    if groups is not None:
        from bnapp.analyses.groups import (
            gamma_rank_agreement,
            gamma_rank_summary,
            held_out_comparison,
        )

        tables["groups"] = held_out_comparison(run, groups, shown["t_hours"], shown["access"])
        tables["groups_gamma_rank"] = gamma_rank_agreement(run, groups)
        tables["groups_gamma_rank_summary"] = gamma_rank_summary(run, groups)
    written = export.shown_tables(tables, target=run.target, input_mode=run.spec.input_mode,
                                  display=shown["display"])
    _write(out, written, run_report.export_figures(run, tables, options))
    card = model_card.model_card(run, tables, data_name=args.data.name, dataset=dataset,
                                 **shown)
    (out / "model_card.md").write_text(card, encoding="utf-8")
    pooled = written["baselines"][written["baselines"]["fold"] == "pooled"]
    print(pooled[["method", "n", "rmse", "mae", "bias", "r2"]].to_string(index=False))
    return tables


def cmd_analyze(args) -> int:
    from bnapp.analyses.layer_tables import parameter_tables, side_by_side
    from bnapp.report import export, run_charts

    if not 0 < args.interval < 1:
        raise UserError(f"--interval {args.interval}: give a level between 0 and 1, e.g. 0.9")
    display, _ = _shown_as(args)

    # spec_from_args reads --mode: give it one it knows, the input mode is set below
    spec = spec_from_args(argparse.Namespace(**{**vars(args), "mode": INPUT_MODES[0]}))
    if args.mode != BOTH:
        run, groups, dataset = trained_run(args, replace(spec, input_mode=args.mode))
        _analyze(args, run, args.out, dataset, groups)
        return 0
    trained = {mode: trained_run(args, replace(spec, input_mode=mode)) for mode in INPUT_MODES}
    runs = {mode: run for mode, (run, _, _) in trained.items()}
    # what compare_input_modes returns, from the tables each run's own analysis computed
    each = {mode: {**_analyze(args, run, args.out / mode, dataset, groups),
                   **parameter_tables(run)} for mode, (run, groups, dataset) in trained.items()}
    tables = side_by_side(each)
    figures = run_charts.gamma_figures(tables["sensitivity"], tables["fit_lines"], spec,
                                       runs["raw"].target, suffix=SIDE_BY_SIDE, display=display)
    shown = side_by_side({mode: export.shown_tables(t, target=runs[mode].target, input_mode=mode,
                                                    display=display) for mode, t in each.items()})
    _write(args.out, {f"{name}{SIDE_BY_SIDE}": table for name, table in shown.items()}, figures)
    return 0
