"""`python -m bnapp explain` writes the Shapley, IG, importance and concordance files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bnapp.cli import main


@pytest.mark.slow
def test_explain_writes_the_four_files_on_the_study_data(urea_csv, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["explain", "--data", str(urea_csv), "--folds", "3", "--epochs", "3",
                 "--n-boot", "100", "--replicates", "4", "--out", str(out)]) == 0
    shap = pd.read_csv(out / "shapley.csv")
    rows = pd.read_csv(out / "shapley_rows.csv")
    assert list(shap.columns) == ["fold", "row", "unit", "value"]
    assert list(rows.columns) == ["fold", "row", "base_value", "prediction"]
    assert len(rows) == 109 and len(shap) == 109 * 5  # every usable row tested once in k-fold
    total = shap.groupby(["fold", "row"])["value"].sum()
    merged = rows.set_index(["fold", "row"]).join(total)
    np.testing.assert_allclose(merged["base_value"] + merged["value"], merged["prediction"],
                               atol=1e-9)
    ig = pd.read_csv(out / "integrated_gradients.csv")
    assert list(ig.columns) == ["fold", "row", "unit", "value"] and len(ig) == len(shap)
    assert pd.read_csv(out / "integrated_gradients_rows.csv")["completeness_gap"].abs().max() < 1e-3
    imp = pd.read_csv(out / "importance.csv")
    assert list(imp.columns) == ["fold", "unit", "definition", "importance", "gamma"]
    assert len(imp) == 3 * 5 * 6
    conc = pd.read_csv(out / "concordance.csv")
    assert list(conc.columns) == ["definition", "statistic", "estimate", "ci_low", "ci_high",
                                  "n_folds", "interval"]
    assert len(conc) == 6 * 3 and (conc["n_folds"] <= 3).all()
    assert conc["interval"].str.startswith("cohorts like this one (4 bootstrap").all()
    assert (pd.read_csv(out / "concordance_hidden.csv")["layer"] == "hidden").all()
    assert "shapley" in capsys.readouterr().out


def test_explain_rejects_a_missing_file(tmp_path, capsys):
    assert main(["explain", "--data", str(tmp_path / "none.csv"), "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
