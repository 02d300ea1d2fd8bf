"""The analyses' real output, from the study's Keras checkpoints and a short training run, drawn
by every chart builder and bundled by the exports."""

from __future__ import annotations

import io
import zipfile

import pandas as pd
import pytest
from PIL import Image

from bnapp.analyses import association, baselines, sensitivity, stages
from bnapp.engine.keras_import import load_keras_run
from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol
from bnapp.engine.results import INPUT, Layer
from bnapp.engine.train import train_run
from bnapp.intake.data import STUDY_INPUTS, load_dataset
from bnapp.report import bn_charts, data_charts, network_charts
from bnapp.report.export import chart_png, export_zip, html_report


def _is_png(data: bytes) -> bool:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    Image.open(io.BytesIO(data)).verify()
    return True


@pytest.fixture(scope="module")
def e2e(seed_dir):
    return load_keras_run(seed_dir, "e2e")


@pytest.fixture(scope="module")
def trained(urea_csv):
    data = load_dataset(urea_csv)
    return train_run(data.X(STUDY_INPUTS), data.y(), ArchSpec.study_e2e(),
                     Protocol(folds=3, epochs=20, val_fraction=0.2), features=STUDY_INPUTS)


@pytest.fixture(scope="module")
def figures(e2e, trained, seed_dir):
    sens = sensitivity.sensitivity(e2e, INPUT, ablations=("zero", "mean"))
    hidden = sensitivity.sensitivity(e2e, Layer.hidden(0), ablations=("zero",))
    norm = load_keras_run(seed_dir, "norm")
    loss, gamma = stages.training_curves(trained)
    return {
        "architecture": network_charts.architecture_chart(e2e.spec, len(e2e.features),
                                                          e2e.features),
        "distributions": data_charts.distributions_chart(
            pd.DataFrame(e2e.X, columns=e2e.features), e2e.features),
        "stages input": bn_charts.stage_boxplot(
            stages.stage_quantiles(stages.bn_stages(e2e)), "Input BN"),
        "stages hidden": bn_charts.stage_boxplot(
            stages.stage_quantiles(stages.bn_stages(e2e, Layer.hidden(0))), "Hidden BN",
            per_fold=True, layer="hidden"),
        "stages z-score model": bn_charts.stage_boxplot(
            stages.stage_quantiles(stages.bn_stages(norm)), "z-score model inputs"),
        "figure 3": bn_charts.gamma_scatter(sens, association.fit_lines(sens, "bias"), "bias", "zero"),
        "figure 3 mean": bn_charts.gamma_scatter(sens, association.fit_lines(sens, "delta_mse"),
                                              "delta_mse", "mean"),
        "figure 5": bn_charts.gamma_scatter(hidden, association.fit_lines(hidden, "bias"), "bias",
                                         "zero"),
        "parameters": bn_charts.parameter_chart(stages.bn_parameters(e2e)[0]),
        "parameters z-score model": bn_charts.parameter_chart(stages.bn_parameters(norm)[0]),
        "gamma trajectories": network_charts.gamma_trajectories(gamma, band=False),
        "gamma trajectories band": network_charts.gamma_trajectories(gamma),
        "loss": network_charts.loss_curves(loss),
        "loss imported": network_charts.loss_curves(stages.training_curves(e2e)[0]),
        "baselines": network_charts.baseline_chart(baselines.baselines(e2e)),
    }


@pytest.mark.slow
def test_every_chart_renders_the_real_analyses(figures):
    for name, chart in figures.items():
        png = chart_png(chart, scale=1)
        assert _is_png(png) and len(png) > 5_000, name


@pytest.mark.slow
def test_study_figure_3_shows_every_unit_and_fold(e2e, figures):
    spec = figures["figure 3"].to_dict()
    points = [d for d in spec["datasets"].values() if d and "abs_gamma" in d[0]]
    assert sum(map(len, points)) == len(e2e.features) * len(e2e.folds)


@pytest.mark.slow
def test_export_bundle_and_report_from_real_tables(e2e, figures):
    per_fold, summary = stages.bn_parameters(e2e)
    tables = {"bn_parameters": summary, "baselines": baselines.baselines(e2e)}
    chosen = {k: figures[k] for k in ("architecture", "figure 3")}
    archive = zipfile.ZipFile(io.BytesIO(export_zip(chosen, tables)))
    assert sorted(archive.namelist()) == [
        "figures/architecture.png", "figures/architecture.svg", "figures/figure_3.png",
        "figures/figure_3.svg", "tables/baselines.csv", "tables/baselines.xlsx",
        "tables/bn_parameters.csv", "tables/bn_parameters.xlsx"]
    back = pd.read_csv(io.BytesIO(archive.read("tables/bn_parameters.csv")), encoding="utf-8-sig")
    pd.testing.assert_frame_equal(back, summary, check_dtype=False, check_exact=False)
    report = html_report("Study e2e run", summary={"rows": str(len(e2e.X))}, figures=chosen,
                         tables=tables,
                         settings=pd.DataFrame({"setting": ["network"], "value": [e2e.label]}))
    assert report.count("<img ") == 2 and "Upos" in report
