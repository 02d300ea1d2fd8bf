"""`export-model`: train (or reuse cached results) and write every fold's network as a Keras,
torch or ONNX file, with predictions.csv and README.txt."""

from __future__ import annotations

from pathlib import Path

from bnapp.cli import UserError
from bnapp.cli.jobs import (
    _data_options,
    _load,
    _prepare_out,
    _protocol_options,
    _require_rows,
)
from bnapp.cli.options import add_arch_options, protocol_from_args, spec_from_args

FORMAT_NAMES = ("keras", "torch", "onnx")  # bnapp.engine.export_model.FORMATS, without importing h5py


def register(sub) -> None:
    exp = sub.add_parser(
        "export-model", help="the trained networks as Keras (.h5), torch (.pt) or ONNX files")
    _data_options(exp)
    add_arch_options(exp)
    exp.add_argument("--protocol", choices=("kfold", "repeated", "study"), default="kfold")
    _protocol_options(exp, folds=None, epochs=None)
    exp.add_argument("--repeats", type=int, default=None)
    exp.add_argument("--format", choices=FORMAT_NAMES, required=True,
                     help="keras: fold_K.h5 (Keras 2/3 HDF5, float32); torch: fold_K.pt "
                          "(TorchScript, float64); onnx: fold_K.onnx (float64)")
    exp.set_defaults(handler=cmd_export_model)


def cmd_export_model(args) -> int:
    from bnapp.cli.jobs import _progress_bar
    from bnapp.engine.export_model import write_export
    from bnapp.engine.train import TrainingDiverged
    from bnapp.intake.units import unit_label
    from bnapp.jobs.runner import cached_train

    dataset, features, target = _load(args.data)
    spec, protocol = spec_from_args(args), protocol_from_args(args)
    _require_rows(dataset, protocol)
    _prepare_out(args.out)
    try:
        with _progress_bar(spec.label) as report:
            run = cached_train(dataset.X(features), dataset.y(target), spec, protocol,
                               features=features, target=target, data_key=dataset.fingerprint(),
                               row_ids=dataset.row_numbers, progress=report,
                               data_name=dataset.name)
    except TrainingDiverged as exc:
        raise UserError(str(exc)) from exc
    units = {c: unit_label(c) for c in [*features, target] if unit_label(c)}
    try:
        paths = write_export(run, args.format, Path(args.out), units)
    except OSError as exc:
        raise UserError(f"--out {args.out}: cannot write the files ({exc.strerror})") from exc
    print(f"{run.spec.label}: wrote {len(run.folds)} {args.format} networks, predictions.csv and "
          f"README.txt to {args.out} ({len(paths)} files)")
    return 0
