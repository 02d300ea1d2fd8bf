"""`python -m bnapp reproduce` and `analyze` end to end (small settings)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from bnapp.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_reproduce_writes_the_published_tables(seed_dir, tmp_path, capsys):
    out = tmp_path / "repro"
    code = main(["reproduce", "--seed-dir", str(seed_dir), "--out", str(out), "--n-boot", "100",
                 "--permutations", "2"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "cumulative" in printed
    for name in ("bn_parameters", "sensitivity_e2e", "sensitivity_norm", "sensitivity_hidden_nodes",
                 "sensitivity_hidden_nodes_cumulative", "comparison", "sensitivity_all",
                 "association", "baselines", "paired_comparison"):
        assert (out / f"{name}.csv").is_file(), name
    assert pd.read_csv(out / "comparison.csv")["matches"].all()
    published = pd.read_csv(seed_dir / "published_sensitivity_e2e.csv")
    assert list(pd.read_csv(out / "sensitivity_e2e.csv").columns) == list(published.columns)


def test_reproduce_refuses_a_wrong_seed_dir(tmp_path, capsys):
    assert main(["reproduce", "--seed-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "seed" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_analyze_refuses_a_bad_architecture(tmp_path, urea_csv, capsys):
    code = main(["analyze", "--data", str(urea_csv), "--arch", "6,x", "--out", str(tmp_path)])
    assert code == 2
    assert "--arch" in capsys.readouterr().err


@pytest.mark.slow
def test_analyze_writes_every_table(urea_csv, tmp_path):
    out = tmp_path / "analysis"
    code = main(["analyze", "--data", str(urea_csv), "--mode", "zscore", "--arch", "4,3",
                 "--folds", "3", "--epochs", "5", "--seed", "1", "--out", str(out),
                 "--n-boot", "50", "--permutations", "2"])
    assert code == 0
    sens = pd.read_csv(out / "sensitivity.csv")
    assert set(sens["layer"]) == {"input", "hidden"}
    assert set(sens["hidden_layer"].dropna()) == {1, 2}  # every hidden layer, not the first only
    assert {"unit", "fold", "mode", "gamma", "bias", "mse", "rmse", "delta_mse"} <= set(sens.columns)
    assoc = pd.read_csv(out / "association.csv")
    assert {"spearman", "pearson", "kendall_tau"} <= set(assoc["statistic"])
    assert {"ci_low", "ci_high"} <= set(assoc.columns)
    base = pd.read_csv(out / "baselines.csv", dtype={"fold": str})
    assert set(base["method"]) == {"network", "linear_regression", "rate_equation", "tattersall"}
    assert set(base["fold"]) == {"0", "1", "2", "pooled"} and "rmse" in base.columns
    params = pd.read_csv(out / "bn_parameters.csv")
    assert params.loc[params["layer"] == "input", "unit"].tolist() == ["Upre", "U120", "Upos",
                                                                       "PP", "UF"]
    assert set(params["hidden_layer"].dropna()) == {1, 2}  # every BN layer, with its own units
    assert params.loc[params["layer"] == "hidden", "gamma_mean"].notna().all()
    share = pd.read_csv(out / "share_within.csv")  # within the default acceptable differences
    assert set(share["method"]) == set(base["method"])
    assert dict(zip(share["quantity"], share["tolerance"], strict=False)) == {"Ueq": 5.0,
                                                                             "eKtV": 0.1}
    assert (share["within"] / share["n"]).to_numpy() == pytest.approx(share["share"].to_numpy())


@pytest.mark.slow
def test_analyze_writes_every_figure_as_png_and_svg(urea_csv, tmp_path):
    out = tmp_path / "figures"
    assert main(["analyze", "--data", str(urea_csv), "--arch", "4,3", "--folds", "3",
                 "--epochs", "5", "--seed", "1", "--out", str(out), "--n-boot", "50",
                 "--permutations", "2"]) == 0
    expected = {"architecture", "baselines", "loss", "gamma_trajectories",
                *(f"{figure}_{stem}" for figure in ("stages", "parameters")
                  for stem in ("input", "hidden1", "hidden2")),
                *(f"gamma_vs_bias_{stem}_{mode}" for stem in ("input", "hidden1", "hidden2")
                  for mode in ("zero", "mean", "permutation")),
                *(f"bland_altman_{method}_{quantity}" for quantity in ("Ueq", "eKtV")
                  for method in ("network", "linear_regression", "rate_equation", "tattersall")),
                "calibration_Ueq", "calibration_eKtV", "interval_coverage", "share_within_Ueq",
                "share_within_eKtV",
                *(f"{figure}_{stem}" for figure in ("concordance", "importance")
                  for stem in ("input", "hidden1", "hidden2")), "ice_pdp"}
    assert {p.stem for p in out.glob("*.png")} == expected
    assert {p.stem for p in out.glob("*.svg")} == expected
    for name in expected:
        assert (out / f"{name}.png").read_bytes()[:8] == PNG_MAGIC, name
        root = ET.fromstring((out / f"{name}.svg").read_text())
        assert root.tag == "{http://www.w3.org/2000/svg}svg", name
