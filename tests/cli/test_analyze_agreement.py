"""`analyze` writes agreement.csv, calibration.csv, predictions.csv and model_card.md."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bnapp.cli import main
from bnapp.intake import data
from bnapp.report.markup import unescape_md

pytestmark = pytest.mark.slow  # trains on the study file and draws every figure

AGREEMENT_COLUMNS = ["method", "quantity", "bias", "loa_low", "loa_high", "loa_low_ci_low",
                     "loa_low_ci_high", "loa_high_ci_low", "loa_high_ci_high", "n"]


@pytest.fixture(scope="module")
def analysis(tmp_path_factory, seed_dir):
    out = tmp_path_factory.mktemp("analysis")
    code = main(["analyze", "--data", str(seed_dir / "Urea.csv"), "--folds", "3", "--epochs",
                 "20", "--out", str(out), "--n-boot", "20", "--permutations", "2",
                 "--interval", "0.8"])
    assert code == 0
    return out


def test_agreement_csv_has_every_method_and_quantity(analysis, urea_csv):
    table = pd.read_csv(analysis / "agreement.csv")
    assert list(table.columns[:10]) == AGREEMENT_COLUMNS
    assert set(table["quantity"]) == {"Ueq", "eKtV"}
    assert set(table["method"]) == {"network", "linear_regression", "rate_equation", "tattersall"}
    usable = data.load_dataset(urea_csv).n_usable
    assert (table.loc[table["quantity"] == "Ueq", "n"] == usable).all()
    assert (table["loa_low_ci_low"] < table["loa_low"]).all()
    assert (table["loa_high"] < table["loa_high_ci_high"]).all()
    calibration = pd.read_csv(analysis / "calibration.csv")
    assert {"method", "quantity", "slope", "slope_ci_low", "slope_ci_high", "intercept",
            "intercept_ci_low", "intercept_ci_high"} <= set(calibration.columns)


def test_predictions_csv_has_one_line_per_test_row_with_its_interval(analysis, urea_csv):
    table = pd.read_csv(analysis / "predictions.csv")
    assert list(table.columns) == ["row", "fold", "measured", "predicted", "pi_low", "pi_high"]
    ds = data.load_dataset(urea_csv)
    assert sorted(table["row"]) == sorted(ds.row_numbers)  # rows as the spreadsheet numbers them
    measured = dict(zip(ds.row_numbers, ds.y(), strict=True))
    assert np.allclose(table["measured"], table["row"].map(measured))
    assert (table["pi_low"] < table["pi_high"]).all()
    inside = ((table["measured"] >= table["pi_low"]) & (table["measured"] <= table["pi_high"]))
    coverage = pd.read_csv(analysis / "coverage.csv", dtype={"fold": str})
    # predictions.csv holds the held-out split-conformal intervals, labelled so in coverage.csv
    net = coverage.query("interval == 'split_conformal' and method == 'network' and "
                         "fold == 'pooled'").iloc[0]
    assert net["level"] == 0.8 and net["coverage"] == pytest.approx(inside.mean())
    assert set(coverage["interval"]) == {"cv_plus", "split_conformal"}


def test_model_card_is_written_beside_the_tables(analysis):
    card = unescape_md((analysis / "model_card.md").read_text(encoding="utf-8"))
    assert "research tool, not a medical device" in card
    assert "Rows read: 129; usable: 109; dropped: 20" in card
    assert "Ueq < Upos: 20" in card
    assert "| centro | method |" in card  # the study's file names its two dialysis units


def test_a_bad_interval_level_is_refused(tmp_path, urea_csv, capsys):
    code = main(["analyze", "--data", str(urea_csv), "--interval", "90", "--out",
                 str(tmp_path / "o")])
    assert code == 2
    assert "--interval" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
