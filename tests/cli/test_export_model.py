"""`export-model`: the trained run's networks as files, whose predictions.csv is what each file
gives in its own runtime, on every usable row of the data file."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pandas as pd
import pytest
import torch

from bnapp.cli import main
from bnapp.engine.keras_import import read_keras_model
from bnapp.engine.model import predict
from bnapp.intake.data import STUDY_INPUTS, load_dataset

ARGS = ["--folds", "2", "--epochs", "3", "--seed", "1"]


def _run_file(fmt: str, path, x: np.ndarray, input_mode: str) -> np.ndarray:
    if fmt == "keras":
        spec, weights = read_keras_model(path, input_mode=input_mode)
        return predict(spec, weights, x)
    if fmt == "torch":
        module = torch.jit.load(path)
        return module(torch.as_tensor(x)).detach().numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("fmt,mode", [("keras", "raw"), ("torch", "zscore"), ("onnx", "raw")])
def test_export_model_writes_files_whose_runtimes_give_predictions_csv(urea_csv, tmp_path, fmt,
                                                                        mode):
    out = tmp_path / "out"
    assert main(["export-model", "--data", str(urea_csv), "--format", fmt, "--mode", mode,
                 "--out", str(out), *ARGS]) == 0
    ext = {"keras": ".h5", "torch": ".pt", "onnx": ".onnx"}[fmt]
    expected = {"fold_0" + ext, "fold_1" + ext, "predictions.csv", "README.txt"}
    if mode == "zscore":
        expected.add("scaler.csv")
    assert {p.name for p in out.iterdir()} == expected
    ds = load_dataset(urea_csv)
    X = ds.X(STUDY_INPUTS)
    table = pd.read_csv(out / "predictions.csv")
    tol = 1e-6 if fmt == "keras" else 1e-10
    for k in (0, 1):
        x = X
        if mode == "zscore":  # the scaler the README points to
            sc = pd.read_csv(out / "scaler.csv").query("fold == @k")
            x = (X - sc["mean"].to_numpy()) / sc["std"].to_numpy()
        part = table[table.fold == k]
        np.testing.assert_array_equal(part.row, ds.row_numbers)
        np.testing.assert_allclose(part.prediction, _run_file(fmt, out / f"fold_{k}{ext}", x, mode),
                                   rtol=tol)
    readme = (out / "README.txt").read_text()
    assert "Upos [mg/dL]" in readme and "Ueq [mg/dL]" in readme
    assert f'"fold_0{ext}"' in readme  # the loading snippet names a file that exists


def test_export_model_refuses_an_unknown_format(urea_csv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export-model", "--data", str(urea_csv), "--format", "pickle",
              "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "invalid choice: 'pickle'" in capsys.readouterr().err


def test_export_model_names_a_missing_data_file(tmp_path, capsys):
    code = main(["export-model", "--data", str(tmp_path / "none.csv"), "--format", "keras",
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'none.csv'}: no such file"
    assert not (tmp_path / "out").exists()
