"""`export-model`: train (or reuse cached results) and write every fold's network as a Keras,
torch or ONNX file, with predictions.csv and README.txt."""

from __future__ import annotations

from pathlib import Path

from bnapp.cli import UserError
from bnapp.cli.options import (
    add_training_options,
    spec_from_args,
    trained_run,
)

FORMAT_NAMES = ("keras", "torch", "onnx")  # bnapp.engine.export_model.FORMATS, without importing h5py


def register(sub) -> None:
    exp = sub.add_parser(
        "export-model", help="the trained networks as Keras (.h5), torch (.pt) or ONNX files")
    add_training_options(exp)
    exp.add_argument("--format", choices=FORMAT_NAMES, required=True,
                     help="keras: fold_K.h5 (Keras 2/3 HDF5, float32); torch: fold_K.pt "
                          "(TorchScript, float64); onnx: fold_K.onnx (float64)")
    exp.set_defaults(handler=cmd_export_model)


def cmd_export_model(args) -> int:
    from bnapp.engine.export_model import write_export
    from bnapp.intake.units import unit_label
    from bnapp.report.cells import table_csv

    run, _, _ = trained_run(args, spec_from_args(args))
    units = {c: unit_label(c) for c in [*run.features, run.target] if unit_label(c)}
    try:
        paths = write_export(run, args.format, Path(args.out), units, csv=table_csv)
    except OSError as exc:
        raise UserError(f"--out {args.out}: cannot write the files ({exc.strerror})") from exc
    print(f"{run.spec.label}: wrote {len(run.folds)} {args.format} networks, predictions.csv and "
          f"README.txt to {args.out} ({len(paths)} files)")
    return 0
