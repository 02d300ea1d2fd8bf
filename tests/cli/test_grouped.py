"""Grouped validation from the command line: --protocol group-kfold|leave-one-group-out with
--group-by on train, grid and analyze, refusals as one line, and the cache told apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bnapp.cli import build_parser, main
from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol, grouped
from bnapp.engine.results import run_from_bytes
from bnapp.intake.data import STUDY_INPUTS, load_dataset
from bnapp.intake.kinetics import predict_ueq
from bnapp.jobs import cache, cached


@pytest.mark.parametrize("command", ["train", "grid", "analyze"])
@pytest.mark.parametrize("kind", ["group-kfold", "leave-one-group-out"])
def test_every_training_command_takes_a_grouped_protocol(command, kind):
    args = build_parser().parse_args([command, "--data", "x.csv", "--out", "o", "--protocol", kind,
                                      "--group-by", "patient id"])
    assert (args.protocol, args.group_by) == (kind, "patient id")


@pytest.mark.parametrize("kind", ["kfold", "repeated", "study"])
def test_analyze_takes_every_ungrouped_protocol(kind):
    args = build_parser().parse_args(["analyze", "--data", "x.csv", "--out", "o", "--protocol",
                                      kind, "--repeats", "2"])
    assert (args.protocol, args.repeats, args.group_by) == (kind, 2, None)


@pytest.mark.parametrize(("extra", "message"), [
    (["--protocol", "group-kfold"], "--protocol group-kfold needs --group-by COLUMN"),
    (["--group-by", "centro"], "--group-by centro: needs --protocol group-kfold or "
                               "leave-one-group-out"),
    (["--protocol", "leave-one-group-out", "--group-by", "patient"],
     "Urea.csv: no column 'patient' to group by"),
    (["--protocol", "group-kfold", "--group-by", "centro", "--folds", "3"],
     "'centro' has 2 groups, too few for 3 grouped folds: use at most 2 folds, or "
     "leave-one-group-out"),
])
@pytest.mark.parametrize("command", ["train", "analyze"])
def test_bad_grouping_is_one_line_and_trains_nothing(command, extra, message, urea_csv, tmp_path,
                                                     capsys, monkeypatch):
    monkeypatch.setattr(cached, "train_run", _refuse)
    args = [command, "--data", str(urea_csv), "--out", str(tmp_path / "o"), "--epochs", "1"]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def _refuse(*args, **kwargs):
    raise AssertionError("nothing should be trained")


def test_train_leave_one_centre_out_keeps_each_centre_together(urea_csv, tmp_path, monkeypatch):
    args = ["train", "--data", str(urea_csv), "--epochs", "2", "--protocol",
            "leave-one-group-out", "--group-by", "centro"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    run = run_from_bytes((tmp_path / "a" / "results.npz").read_bytes())
    centres = load_dataset(urea_csv).frame["centro"].to_numpy()
    assert len(run.folds) == 2
    assert [set(centres[f.test_rows]) for f in run.folds] == [{0.0}, {1.0}]
    assert all(not set(centres[f.train_rows]) & set(centres[f.test_rows]) for f in run.folds)
    assert run.protocol["group_by"] == "centro"
    # an ungrouped run of the same data is another entry
    assert main(["train", "--data", str(urea_csv), "--epochs", "2", "--folds", "2",
                 "--out", str(tmp_path / "c")]) == 0
    assert len(cache.entries()) == 2
    # the grouped run again comes from the cache: same key, nothing trained
    monkeypatch.setattr(cached, "train_run", _refuse)
    assert main([*args, "--out", str(tmp_path / "b")]) == 0


def test_cache_keys_differ_by_grouping_and_not_for_ungrouped_protocols():
    spec, features = ArchSpec.study_e2e(), STUDY_INPUTS
    base = Protocol(folds=2)
    labels_a = np.repeat([1, 2, 3, 4], 5)
    labels_b = np.tile([1, 2, 3, 4], 5)  # the same groups' names on other rows
    keys = {cache.run_key("data", spec, p, features, "Ueq") for p in (
        base,
        grouped(base, "group-kfold", "patient", labels_a),
        grouped(base, "group-kfold", "patient", labels_b),
        grouped(base, "group-kfold", "unit", labels_a),  # same labels, another column
        grouped(base, "leave-one-group-out", "patient", labels_a),
    )}
    assert len(keys) == 5
    # an ungrouped protocol's key is the one its fields gave before grouping existed
    old_fields = {"kind": "kfold", "folds": 2, "repeats": 1, "epochs": 200, "batch_size": 32,
                  "lr": 0.01, "seed": 0, "val_fraction": 0.0, "patience": None}
    assert cache.run_key("data", spec, base, features, "Ueq") == cache.run_key(
        "data", spec, old_fields, features, "Ueq")


@pytest.mark.slow
def test_analyze_leave_one_centre_out_writes_groups_csv(urea_csv, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["analyze", "--data", str(urea_csv), "--out", str(out), "--epochs", "3",
                 "--protocol", "leave-one-group-out", "--group-by", "centro",
                 "--permutations", "1", "--n-boot", "20"]) == 0
    table = pd.read_csv(out / "groups.csv")
    assert sorted(table["held_out"].unique()) == [0, 1]
    ds = load_dataset(urea_csv)
    for unit, rows in table.groupby("held_out"):
        on_unit = ds.frame[ds.frame["centro"] == unit]
        assert set(rows["n"]) == {len(on_unit)}
        # the rate equation needs no training: its error on a unit is computed here directly
        pred = np.asarray(predict_ueq(on_unit[STUDY_INPUTS], method="rate_equation"))
        rmse = np.sqrt(np.mean((pred - on_unit["Ueq"].to_numpy()) ** 2))
        got = rows.set_index("method")
        assert got.at["rate_equation", "rmse"] == pytest.approx(rmse)
        assert got.at["rate_equation", "rmse_minus_network"] == pytest.approx(
            rmse - got.at["network", "rmse"])
    rank = pd.read_csv(out / "groups_gamma_rank.csv")
    assert len(rank) == 1 and -1 <= rank.at[0, "spearman"] <= 1


def test_the_exported_command_of_a_grouped_run_trains_the_same_protocol(urea_csv):
    import shlex

    from bnapp.cli.options import grouping, protocol_from_args
    from bnapp.engine.train import train_run
    from bnapp.intake.groups import group_labels
    from bnapp.report import run_report

    ds = load_dataset(urea_csv)
    labels = group_labels(ds, "centro")
    protocol = grouped(Protocol(epochs=1), "leave-one-group-out", "centro", labels)
    run = train_run(ds.X(STUDY_INPUTS), ds.y(), ArchSpec.study_e2e(), protocol,
                    features=STUDY_INPUTS, groups=labels)
    options = run_report.analysis_options()
    command, differences = run_report.cli_command(run, "Urea.csv", options)
    assert differences == []
    args = build_parser().parse_args(shlex.split(command)[3:])  # after "python -m bnapp"
    rebuilt, _ = grouping(args, ds, protocol_from_args(args))
    assert rebuilt.to_dict() == run.protocol
