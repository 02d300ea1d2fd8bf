"""Raw versus z-score (study figures 3 and 4): the comparison function, its chart and
`analyze --mode both`."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bnapp.analyses.association import association, fit_lines
from bnapp.analyses.layer_tables import compare_input_modes, comparison_problem, layer_rows
from bnapp.analyses.sensitivity import sensitivity
from bnapp.analyses.stages import bn_parameters
from bnapp.cli import main
from bnapp.engine.model import ArchSpec
from bnapp.engine.results import INPUT, Layer
from bnapp.report import bn_charts
from bnapp.report.export import chart_png, chart_svg
from tests.analyses.test_metrics import make_run

SPEC = ArchSpec(hidden=(3, 2))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs():
    return {mode: make_run(replace(SPEC, input_mode=mode), folds=4) for mode in ("raw", "zscore")}


@pytest.fixture(scope="module")
def compared(runs):
    return compare_input_modes(runs["raw"], runs["zscore"], n_permutations=2, n_boot=100,
                               n_replicates=0)


def test_the_tables_stack_both_modes_and_every_layer(compared):
    assert set(compared) == {"sensitivity", "fit_lines", "association", "bn_parameters",
                             "bn_parameters_per_fold"}
    for name, table in compared.items():
        assert table.columns[0] == "input_mode", name
        assert set(table["input_mode"]) == {"raw", "zscore"}, name
        assert set(table["layer"]) == {"input", "hidden"}, name
        assert set(table["hidden_layer"].dropna()) == {1, 2}, name


@pytest.mark.parametrize("mode", ["raw", "zscore"])
@pytest.mark.parametrize("layer", [INPUT, Layer.hidden(1)])
def test_each_mode_holds_its_own_runs_analyses(runs, compared, mode, layer):
    run = runs[mode]

    def mine(name: str) -> pd.DataFrame:
        table = compared[name]
        rows = layer_rows(table[table["input_mode"] == mode], layer)
        return rows.drop(columns=["input_mode", "layer", "hidden_layer"]).reset_index(drop=True)

    own = sensitivity(run, layer, n_permutations=2, seed=0)
    pd.testing.assert_frame_equal(mine("sensitivity"), own.drop(columns="layer"))
    per_fold, _ = bn_parameters(run, layer)
    pd.testing.assert_frame_equal(mine("bn_parameters_per_fold"), per_fold)
    lines = mine("fit_lines")
    expected = fit_lines(own, "rmse").drop(columns="layer")
    pd.testing.assert_frame_equal(
        lines[lines["metric"] == "rmse"].drop(columns="metric").reset_index(drop=True), expected)
    assoc = mine("association")
    rho = assoc[(assoc["metric"] == "bias") & (assoc["mode"] == "zero")].set_index("statistic")
    reference = association(own, "bias", n_boot=100).set_index("statistic")
    assert rho.loc["spearman", "estimate"] == pytest.approx(
        reference[reference["mode"] == "zero"].loc["spearman", "estimate"])


def test_the_two_modes_differ(compared):
    sens = compared["sensitivity"]
    raw, z = (sens[(sens["input_mode"] == m) & (sens["mode"] == "zero")]["mse"].to_numpy()
              for m in ("raw", "zscore"))
    assert not np.allclose(raw, z)


def test_runs_that_are_not_one_network_on_one_data_set_are_refused(runs):
    raw, z = runs["raw"], runs["zscore"]
    assert comparison_problem(raw, z) is None
    assert "raw run and a z-score run" in comparison_problem(z, raw)
    other = make_run(ArchSpec(hidden=(4,), input_mode="zscore"), folds=4)
    assert "different networks" in comparison_problem(raw, other)
    assert "protocols" in comparison_problem(raw, replace(z, protocol={"folds": 4}))
    moved = replace(z, y=z.y + 1.0)
    assert "different data" in comparison_problem(raw, moved)
    with pytest.raises(ValueError, match="different networks"):
        compare_input_modes(raw, other)


# ------------------------------------------------------------------------------- the chart

def test_the_side_by_side_chart_shares_its_axes_and_renders(compared):
    sens = layer_rows(compared["sensitivity"], INPUT)
    lines = layer_rows(compared["fit_lines"], INPUT)
    chart = bn_charts.input_mode_scatter(sens, lines[lines["metric"] == "bias"].drop(columns="metric"),
                                      "bias", "zero")
    spec = chart.to_dict()
    assert len(spec["hconcat"]) == 2
    assert spec["resolve"]["scale"] == {"x": "shared", "y": "shared"}
    assert [p["title"]["text"] for p in spec["hconcat"]] == ["Raw inputs", "Z-scored inputs"]
    png = chart_png(chart, scale=1)
    assert png[:8] == PNG_MAGIC
    image = Image.open(io.BytesIO(png))
    assert 450 <= image.width <= 1000
    assert ET.fromstring(chart_svg(chart)).tag.endswith("svg")
    # each panel draws its own mode's points: the raw panel's |γ| are the raw run's
    datasets = spec["datasets"]
    panel_data = [datasets[layer["data"]["name"]] for panel in spec["hconcat"]
                  for layer in panel["layer"] if "abs_gamma" in datasets[layer["data"]["name"]][0]]
    for rows, mode in zip(panel_data, ("raw", "zscore"), strict=True):
        expected = sens[(sens["input_mode"] == mode) & (sens["mode"] == "zero")]["abs_gamma"]
        np.testing.assert_allclose(sorted(r["abs_gamma"] for r in rows), sorted(expected))


def test_a_mode_without_bn_says_so_in_its_panel(compared):
    sens = compared["sensitivity"]
    sens = sens.assign(abs_gamma=np.where(sens["input_mode"] == "zscore", np.nan, sens["abs_gamma"]))
    chart = bn_charts.input_mode_scatter(sens, compared["fit_lines"], "bias", "zero")
    spec = chart.to_dict()
    panel = spec["hconcat"][1]
    assert panel["mark"]["type"] == "text"
    assert "No γ" in spec["datasets"][panel["data"]["name"]][0]["message"]


# ------------------------------------------------------------------------------- the CLI

def _is_png(path) -> bool:
    return path.read_bytes()[:8] == PNG_MAGIC


def _is_svg(path) -> bool:
    return ET.fromstring(path.read_text()).tag.endswith("svg")


@pytest.mark.slow
def test_analyze_mode_both_writes_each_run_and_the_comparison(urea_csv, tmp_path, capsys):
    out = tmp_path / "both"
    code = main(["analyze", "--data", str(urea_csv), "--mode", "both", "--arch", "4,3",
                 "--folds", "3", "--epochs", "5", "--seed", "2", "--out", str(out),
                 "--n-boot", "50", "--permutations", "2"])
    assert code == 0, capsys.readouterr().err
    for mode in ("raw", "zscore"):
        assert (out / mode / "sensitivity.csv").is_file() and _is_png(out / mode / "loss.png")
    sens = pd.read_csv(out / "sensitivity_by_input_mode.csv")
    assert set(sens["input_mode"]) == {"raw", "zscore"}
    assert set(sens["hidden_layer"].dropna()) == {1, 2}
    # the side-by-side rows are each run's own
    raw = pd.read_csv(out / "raw" / "sensitivity.csv")
    mine = sens[sens["input_mode"] == "raw"].drop(columns="input_mode").reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, raw)
    assoc = pd.read_csv(out / "association_by_input_mode.csv")
    assert set(assoc["input_mode"]) == {"raw", "zscore"} and "spearman" in set(assoc["statistic"])
    params = pd.read_csv(out / "bn_parameters_by_input_mode.csv")
    assert set(zip(params["input_mode"], params["layer"], strict=True)) == {
        (m, k) for m in ("raw", "zscore") for k in ("input", "hidden")}
    for stem in ("input", "hidden1", "hidden2"):
        for ablation in ("zero", "mean", "permutation"):
            name = f"gamma_vs_bias_{stem}_{ablation}_by_input_mode"
            assert _is_png(out / f"{name}.png") and _is_svg(out / f"{name}.svg"), name


def test_analyze_refuses_an_unknown_mode(urea_csv, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["analyze", "--data", str(urea_csv), "--mode", "all", "--out", str(tmp_path)])
    assert "both" in capsys.readouterr().err
