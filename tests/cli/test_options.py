"""The architecture options shared by `train` and `analyze` build one ArchSpec; the protocol
options one Protocol."""

from __future__ import annotations

import argparse

import pytest

from bnapp.cli import UserError
from bnapp.cli.options import (
    add_arch_options,
    add_protocol_options,
    protocol_from_args,
    spec_from_args,
)
from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol


def _parse(*argv: str):
    parser = argparse.ArgumentParser()
    add_arch_options(parser)
    return parser.parse_args(argv)


def test_defaults_are_the_study_network():
    assert spec_from_args(_parse()) == ArchSpec.study_e2e()


@pytest.mark.parametrize("flag", ["--arch", "--hidden"])
def test_both_spellings_build_the_same_spec(flag):
    spec = spec_from_args(_parse(flag, "6,6", "--mode", "zscore", "--no-input-bn",
                                 "--no-hidden-bn"))
    assert spec == ArchSpec.study_zscore()


@pytest.mark.parametrize("widths", ["6,x", "0", ""])
def test_bad_widths_are_a_user_error(widths):
    with pytest.raises(UserError, match="give widths like 6 or 6,6"):
        spec_from_args(_parse("--arch", widths))


def test_train_counts_every_models_epochs_with_a_rate_and_time_left(urea_csv, tmp_path, capsys,
                                                                     monkeypatch):
    from bnapp.cli import main

    monkeypatch.setenv("BNAPP_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["train", "--data", str(urea_csv), "--out", str(tmp_path / "out"),
                 "--folds", "3", "--epochs", "7"]) == 0
    bar = capsys.readouterr().err.splitlines()[-1]
    assert "21/21" in bar, "3 models x 7 epochs"
    assert ("epoch/s" in bar or "s/epoch" in bar) and "<00:00" in bar, bar  # rate, no time left


def _protocol(*argv: str) -> Protocol:
    parser = argparse.ArgumentParser()
    add_protocol_options(parser)
    return protocol_from_args(parser.parse_args(argv))


def test_bn_decay_chooses_keras2_and_keeps_keras3_by_default():
    assert _protocol() == Protocol()
    assert _protocol("--bn-decay", "keras2", "--epochs", "5") == Protocol(epochs=5, bn_decay="keras2")
    assert _protocol("--bn-decay", "keras3") == Protocol()
    with pytest.raises(SystemExit):
        _protocol("--bn-decay", "keras1")


TRAINING_COMMANDS = ("train", "analyze", "explain", "export-model")


@pytest.mark.parametrize("command", TRAINING_COMMANDS)
def test_every_training_command_reads_one_network_and_protocol_alike(command, tmp_path):
    from bnapp.cli import build_parser

    extra = ["--format", "onnx"] if command == "export-model" else []
    args = build_parser().parse_args([
        command, "--data", "d.csv", "--out", str(tmp_path), "--mode", "zscore", "--arch", "6,6",
        "--no-input-bn", "--no-hidden-bn", "--folds", "4", "--epochs", "9", "--lr", "0.01",
        "--protocol", "group-kfold", "--group-by", "centre", *extra])
    assert spec_from_args(args) == ArchSpec.study_zscore()
    assert protocol_from_args(args) == Protocol(kind="kfold", folds=4, epochs=9, lr=0.01)
    assert (args.data.name, args.out, args.group_by) == ("d.csv", tmp_path, "centre")


def test_only_analyze_takes_both_input_modes_and_its_own_protocol_defaults(tmp_path):
    from bnapp.cli import build_parser

    parser, common = build_parser(), ["--data", "d.csv", "--out", str(tmp_path)]
    args = parser.parse_args(["analyze", *common, "--mode", "both"])
    assert (args.mode, args.folds, args.epochs) == ("both", 10, 200)
    assert protocol_from_args(args) == Protocol(folds=10, epochs=200)
    with pytest.raises(SystemExit):
        parser.parse_args(["train", *common, "--mode", "both"])
