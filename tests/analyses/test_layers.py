"""`analyze`, the HTML report and the ZIP cover the input and every hidden layer of a deep run."""

from __future__ import annotations

import html
import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from bnapp.analyses.association import association
from bnapp.analyses.layer_tables import layer_rows, tag_layer
from bnapp.analyses.sensitivity import sensitivity
from bnapp.analyses.stages import stage_summary
from bnapp.engine.model import ArchSpec
from bnapp.engine.results import INPUT, Layer, network_layers
from bnapp.report import export, run_charts, run_report
from tests.analyses.test_metrics import make_run

SPEC = ArchSpec(hidden=(5, 4), activation="relu")  # two hidden BN layers of different widths
OPTIONS = {"n_permutations": 2, "n_boot": 50, "seed": 0, "n_replicates": 0}


@pytest.fixture(scope="module")
def run():
    return make_run(SPEC)


@pytest.fixture(scope="module")
def tables(run):
    return run_report.run_tables(run, **OPTIONS)


def test_layers_and_stems():
    assert network_layers(SPEC) == [INPUT, Layer.hidden(0), Layer.hidden(1)]
    assert [layer.stem for layer in network_layers(SPEC)] == ["input", "hidden1", "hidden2"]
    assert [layer.label for layer in network_layers(SPEC)] == ["input", "hidden layer 1",
                                                               "hidden layer 2"]
    assert [layer.number for layer in network_layers(SPEC)] == [None, 1, 2]


@pytest.mark.parametrize("kind,index", [("output", 0), ("input", 1), ("hidden", -1)])
def test_a_layer_that_cannot_exist_is_refused(kind, index):
    with pytest.raises(ValueError, match="layer"):
        Layer(kind, index)


def test_tag_layer_keeps_the_rows_and_numbers_hidden_layers_from_one():
    frame = pd.DataFrame({"unit": ["a", "b"], "value": [1.0, 2.0]})
    hidden = tag_layer(frame, Layer.hidden(1))
    assert list(hidden.columns) == ["layer", "hidden_layer", "unit", "value"]
    assert list(hidden["hidden_layer"]) == [2, 2] and set(hidden["layer"]) == {"hidden"}
    assert tag_layer(frame, INPUT)["hidden_layer"].isna().all()
    both = pd.concat([hidden, tag_layer(frame, INPUT)], ignore_index=True)
    assert list(layer_rows(both, Layer.hidden(1)).index) == [0, 1]
    assert list(layer_rows(both, INPUT).index) == [2, 3]
    assert layer_rows(both, Layer.hidden(0)).empty


@pytest.mark.parametrize("layer", network_layers(SPEC), ids=lambda layer: layer.stem)
def test_every_layer_has_its_own_sensitivity_and_stages(run, tables, layer):
    own = sensitivity(run, layer, n_permutations=2, seed=0)
    mine = layer_rows(tables["sensitivity"], layer).drop(columns="hidden_layer")
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), own)
    quantiles = layer_rows(tables["stage_quantiles"], layer).drop(columns=["layer", "hidden_layer"])
    pd.testing.assert_frame_equal(quantiles.reset_index(drop=True), stage_summary(run, layer))


def test_the_association_never_pools_two_hidden_layers(run, tables):
    assoc = tables["association"]
    deep = layer_rows(assoc, Layer.hidden(1))
    pearson = deep[(deep["mode"] == "zero") & (deep["metric"] == "bias")
                   & (deep["statistic"] == "pearson")].iloc[0]
    assert pearson["n"] == 3 * 4  # folds x nodes of hidden layer 2 only
    own = association(sensitivity(run, Layer.hidden(1), ablations=("zero",)), "bias", n_boot=50)
    assert pearson["estimate"] == pytest.approx(
        own.set_index("statistic").loc["pearson", "estimate"])
    assert set(assoc["hidden_layer"].dropna()) == {1, 2}


@pytest.mark.slow
def test_every_layer_has_its_figures(run, tables):
    figures = run_charts.run_figures(run, tables)
    for stem in ("input", "hidden1", "hidden2"):
        assert f"stages_{stem}" in figures
        for mode in ("zero", "mean", "permutation"):
            assert f"gamma_vs_bias_{stem}_{mode}" in figures
    title = str(figures["stages_hidden2"].to_dict()["title"])
    assert "hidden layer 2 (4 nodes)" in title
    units = {d["unit"] for data in figures["gamma_vs_bias_hidden2_zero"].to_dict()["datasets"].values()
             for d in data if "unit" in d}
    assert units == {f"layer 2 node {k}" for k in range(1, 5)}


@pytest.mark.slow
def test_the_zip_and_report_hold_the_deep_layers(run, tables):
    figures = run_charts.run_figures(run, tables)
    figures = {name: figures[name] for name in ("stages_hidden2", "gamma_vs_bias_hidden2_zero")}
    bundle = run_report.build_export(run, tables, figures, run_key="0" * 64, data_name="deep.csv",
                                 options=OPTIONS)
    with zipfile.ZipFile(io.BytesIO(bundle.zip_bytes)) as archive:
        names = set(archive.namelist())
        sens = pd.read_csv(io.BytesIO(archive.read(next(n for n in names
                                                        if n.endswith("sensitivity.csv")))))
    assert {n.rsplit("/", 1)[-1] for n in names} >= {"stages_hidden2.png", "stages_hidden2.svg",
                                                     "gamma_vs_bias_hidden2_zero.png"}
    assert set(sens["hidden_layer"].dropna().astype(int)) == {1, 2}
    words = export.caption(figures["stages_hidden2"])  # its title and subtitle as sentences
    assert "hidden layer 2" in words.lower()
    assert f"<figcaption>{html.escape(words, quote=True)}</figcaption>" in bundle.html
    assert np.isfinite(sens["mse"]).all()
