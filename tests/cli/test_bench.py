"""`bench` plumbing: its data, its JSON line and its errors (the timing itself is not tested)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bnapp.cli import bench, main
from bnapp.engine.kernel import epoch_orders
from bnapp.engine.model import ArchSpec, init_weights
from bnapp.engine.protocols import Protocol
from bnapp.engine.reference import train_reference
from bnapp.engine.train import make_splits, model_rngs, train_run
from bnapp.intake.data import STUDY_INPUTS


def test_bench_reads_the_study_rows_by_default():
    dataset = bench.bench_dataset()
    X, y = dataset.X(STUDY_INPUTS), dataset.y()
    assert X.shape == (109, 5) and y.shape == (109,)
    assert (y >= X[:, 2]).all()  # Ueq >= Upos, as the study keeps


@pytest.mark.slow
def test_plain_loop_trains_the_same_models_in_float32(urea_csv):
    """The float32 baseline is the same computation: close to the float64 batched result."""
    dataset = bench.bench_dataset(urea_csv)
    X, y = dataset.X(STUDY_INPUTS), dataset.y()
    protocol = Protocol(kind="study", folds=1, epochs=5, val_fraction=0.2)
    spec = ArchSpec.study_e2e()
    split = make_splits(protocol, len(X))[0]
    init_rng, order_seed = model_rngs(protocol, split)
    w32, loss32 = train_reference(spec, init_weights(spec, 5, init_rng), X[split.train], y[split.train],
                                  epoch_orders(len(split.train), 5, order_seed), dtype=torch.float32)
    fold = train_run(X, y, spec, protocol, features=STUDY_INPUTS).folds[0]
    np.testing.assert_allclose(loss32, fold.history["loss"], rtol=1e-4)


def test_bench_cli_ends_with_one_json_line(monkeypatch, capsys, urea_csv):
    calls = []

    def fake_benchmark(X, y):
        calls.append(X.shape)
        return {"study_protocol_seconds": 0.02, "plain_loop_seconds": 3.0, "speedup": 150.0,
                "grid_seconds": 4.0, "grid_models": 2400, "startup_seconds": 1.2}

    monkeypatch.setattr(bench, "benchmark", fake_benchmark)
    assert main(["bench", "--data", str(urea_csv), "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    figures = json.loads(last)
    assert calls == [(109, 5)]
    assert {"study_protocol_seconds", "plain_loop_seconds", "speedup", "grid_seconds",
            "grid_models", "startup_seconds", "cli_import_seconds"} <= set(figures)


def test_bench_cli_refuses_a_missing_file(tmp_path, capsys):
    assert main(["bench", "--data", str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_bench_cli_names_missing_columns(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("Upre,Ueq\n1,2\n")
    assert main(["bench", "--data", str(bad)]) == 2
    assert "Upos" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_scale_ends_with_one_json_line_per_size(capsys):
    assert main(["bench", "--scale", "--sizes", "300,600", "--epochs", "20", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    (last,) = [json.loads(out[-1])["scale"]]
    assert [r["sessions"] for r in last] == [300, 600]
    for r in last:
        assert r["seconds"] > 0 and r["peak_rss_mb"] > 50  # numpy + numba alone take more
        assert r["row_epochs_per_second"] == pytest.approx(r["sessions"] * 0.9 * 10 * 20
                                                           / r["seconds"])


def test_bench_scale_refuses_sizes_it_cannot_read(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--scale", "--sizes", "10k"])
    assert "whole numbers separated by commas" in capsys.readouterr().err
    assert main(["bench", "--sizes", "1000"]) == 2
    assert "--sizes and --epochs go with --scale" in capsys.readouterr().err


def test_dense_flops_match_torchs_count():
    """The hand count's Dense part against torch's FlopCounterMode (it counts matrix products
    only) on one forward and backward pass of the study network."""
    from torch.utils.flop_counter import FlopCounterMode

    from bnapp.cli.bench_scale import flops_per_row_epoch
    from bnapp.engine.reference import ReferenceNet

    spec, rows = ArchSpec(hidden=(6, 3)), 32
    net = ReferenceNet(spec, 5)
    with FlopCounterMode(display=False) as counter:
        net(torch.randn(rows, 5, dtype=torch.float64)).sum().backward()
    dense_only = flops_per_row_epoch(spec.hidden, 5, input_bn=False, hidden_bn=False)
    activations_and_biases = 4 * 9 + 2 * (6 + 3 + 1) + 3
    assert counter.get_total_flops() == rows * (dense_only - activations_and_biases)
