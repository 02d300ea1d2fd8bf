"""Every chart builder renders to a real PNG and SVG from frames built to the analyses' schemas,
ships only small inline data, and draws hostile user text as inert text."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import altair as alt
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bnapp.analyses.stages import STAGES, stage_quantiles
from bnapp.engine.model import ArchSpec
from bnapp.report import bn_charts, data_charts, network_charts, style
from bnapp.report.export import chart_png, chart_svg

UNITS = ["Upre", "U120", "Upos", "PP", "UF"]
XSS = "<img src=x onerror=alert(1)>"
MD = "[x](javascript:alert(1))"


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def make_stages(n_rows: int, units=UNITS, folds: int = 3, seed: int = 0) -> pd.DataFrame:
    """bn_stages' schema: DataFrame[fold, unit, stage, value], n_rows test rows per fold."""
    rng = _rng(seed)
    parts = []
    for fold in range(folds):
        for stage in STAGES:
            values = rng.normal(100 if stage == "raw" else 0, 20 if stage == "raw" else 1,
                                (n_rows, len(units)))
            parts.append(pd.DataFrame({"fold": fold, "unit": np.tile(units, n_rows),
                                       "stage": stage, "value": values.ravel()}))
    out = pd.concat(parts, ignore_index=True)
    out["stage"] = pd.Categorical(out["stage"], categories=STAGES, ordered=True)
    return out


def make_sensitivity(units=UNITS, folds: int = 10, ablations=("zero", "mean"), layer="input",
                     seed: int = 0) -> pd.DataFrame:
    rng = _rng(seed)
    rows = []
    for mode in ablations:
        for fold in range(folds):
            for k, unit in enumerate(units):
                gamma = rng.normal(1 + k * 0.5, 0.3)
                bias = abs(gamma) * 5 + rng.normal(0, 1)
                rows.append({"layer": layer, "unit": unit, "fold": fold, "mode": mode,
                             "gamma": gamma, "abs_gamma": abs(gamma), "mean_error": -bias,
                             "std_error": 3.0, "bias": abs(bias), "mse": bias**2 + 9,
                             "rmse": np.sqrt(bias**2 + 9), "delta_mse": bias**2,
                             "mean_percent_error": -bias, "std_percent_error": 4.0})
    return pd.DataFrame(rows)


def make_lines(sens: pd.DataFrame, metric: str) -> pd.DataFrame:
    """fit_lines' schema, with a straight line standing in for both kinds."""
    parts = []
    for (layer, mode, unit), g in sens.groupby(["layer", "mode", "unit"], sort=False):
        x = np.linspace(g["abs_gamma"].min(), g["abs_gamma"].max(), 20)
        slope, intercept = np.polyfit(g["abs_gamma"], g[metric], 1)
        for kind in ("linear", "lowess"):
            parts.append(pd.DataFrame({"layer": layer, "mode": mode, "unit": unit, "kind": kind,
                                       "x": x, "y": intercept + slope * x}))
    return pd.concat(parts, ignore_index=True)


def make_comparison(folds: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """compare_input_modes' sensitivity and fit_lines (one metric): both input modes stacked."""
    sens = pd.concat([make_sensitivity(folds=folds, seed=k).assign(input_mode=mode)
                      for k, mode in enumerate(("raw", "zscore"))], ignore_index=True)
    lines = pd.concat([make_lines(sens[sens["input_mode"] == mode], "bias").assign(input_mode=mode)
                       for mode in ("raw", "zscore")], ignore_index=True)
    return sens, lines


def make_per_fold(units=UNITS, folds: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = _rng(seed)
    scale = np.array([33.0, 22.0, 16.0, 16.0, 1.1])[: len(units)]
    rows = []
    for fold in range(folds):
        for k, unit in enumerate(units):
            std = scale[k % len(scale)] * rng.normal(1, 0.03)
            rows.append({"fold": fold, "unit": unit, "moving_mean": 100.0, "moving_std": 0.97 * std,
                         "beta": rng.normal(0, 1e-7), "gamma": rng.normal(1.5 + k, 0.5),
                         "scaler_mean": 100.0, "scaler_std": std})
    return pd.DataFrame(rows)


def make_curves(epochs: int = 200, folds: int = 10, units=UNITS, seed: int = 0):
    rng = _rng(seed)
    e = np.arange(1, epochs + 1)
    loss = pd.concat([pd.DataFrame({"fold": f, "epoch": e, "loss": 900 * np.exp(-e / 30) + 30,
                                    "val_loss": 900 * np.exp(-e / 30) + 40}) for f in range(folds)])
    gamma = pd.concat([pd.DataFrame({
        "fold": f, "epoch": np.repeat(e, len(units)), "unit": np.tile(units, epochs),
        "gamma": 1 + rng.normal(0, 0.1, epochs * len(units))}) for f in range(folds)])
    return loss.reset_index(drop=True), gamma.reset_index(drop=True)


def make_baselines(folds: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = _rng(seed)
    rows = []
    for method, base in [("network", 6), ("linear_regression", 7), ("rate_equation", 9),
                         ("tattersall", 10)]:
        for fold in [*map(str, range(folds)), "pooled"]:
            rmse = base if fold == "pooled" else base + rng.normal()
            rows.append({"method": method, "fold": fold, "n": 22, "rmse": rmse, "mae": rmse * 0.8,
                         "bias": 1.0, "mean_error": -1.0, "r2": 0.9})
    return pd.DataFrame(rows)


def make_grid(seed: int = 0) -> pd.DataFrame:
    from bnapp.engine.grid import study_grid  # the engine's 480 specs; the frame is built here
    rng = _rng(seed)
    specs = study_grid()
    counts = [s.param_counts(5) for s in specs]
    mse = rng.lognormal(3.5, 0.4, len(specs))
    mse[::41] = np.nan
    return pd.DataFrame({
        "label": [s.label for s in specs], "hidden": [str(s.hidden) for s in specs],
        "n_layers": [len(s.hidden) for s in specs], "width": [max(s.hidden) for s in specs],
        "activation": [s.activation for s in specs],
        "output_activation": [s.output_activation for s in specs],
        "bn": [s.input_bn and s.hidden_bn for s in specs],
        "input_mode": [s.input_mode for s in specs],
        "trainable": [c.trainable for c in counts], "non_trainable": [c.non_trainable for c in counts],
        "total_params": [c.trainable + c.non_trainable for c in counts],
        "cv_mse_mean": mse, "cv_mse_sd": mse / 10, "diverged": np.isnan(mse)})


def all_charts() -> dict[str, alt.TopLevelMixin]:
    sens = make_sensitivity()
    loss, gamma = make_curves()
    frame = pd.DataFrame(_rng().normal(100, 20, (300, 5)), columns=UNITS)
    quantiles = stage_quantiles(make_stages(40))
    return {
        "architecture": network_charts.architecture_chart(ArchSpec.study_e2e(), 5, UNITS),
        "distributions": data_charts.distributions_chart(frame, UNITS),
        "stages": bn_charts.stage_boxplot(quantiles, "Input BN"),
        "stages_per_fold": bn_charts.stage_boxplot(quantiles, "Input BN", per_fold=True),
        "scatter": bn_charts.gamma_scatter(sens, make_lines(sens, "bias"), "bias", "zero"),
        "scatter_by_input_mode": bn_charts.input_mode_scatter(*make_comparison(), "bias", "zero"),
        "parameters": bn_charts.parameter_chart(make_per_fold()),
        "trajectories": network_charts.gamma_trajectories(gamma, band=False),
        "trajectories_band": network_charts.gamma_trajectories(gamma),
        "loss": network_charts.loss_curves(loss),
        "baselines": network_charts.baseline_chart(make_baselines()),
        "grid": network_charts.grid_heatmap(make_grid()),
    }


CHARTS = all_charts()


def inline_rows(chart: alt.TopLevelMixin) -> int:
    """Rows of data the chart ships (Altair gathers inline data in "datasets")."""
    spec = chart.to_dict()
    return sum(len(v) for v in spec.get("datasets", {}).values())


def _walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


@pytest.mark.parametrize("name", list(CHARTS))
@pytest.mark.slow
def test_chart_renders_a_real_png_and_svg(name):
    chart = CHARTS[name]
    png = chart_png(chart, scale=1)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 10_000  # a drawn figure, not an empty canvas
    image = Image.open(io.BytesIO(png))
    image.load()
    # paper size: 450-1000 px wide at scale 1, neither a sliver nor a banner
    assert 450 <= image.width <= 1000, image.size
    assert 0.25 <= image.height / image.width <= 1.6, image.size
    # not blank: a figure has many distinct colours
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 20
    root = ET.fromstring(chart_svg(chart))
    assert root.tag.endswith("svg")


def test_png_scale_doubles_the_pixels():
    chart = CHARTS["baselines"]
    one = Image.open(io.BytesIO(chart_png(chart, scale=1)))
    two = Image.open(io.BytesIO(chart_png(chart, scale=2)))
    assert two.size == (2 * one.width, 2 * one.height)


@pytest.mark.parametrize("name", list(CHARTS))
@pytest.mark.slow
def test_charts_carry_inline_small_data_and_no_urls(name):
    spec = CHARTS[name].to_dict()
    assert not [k for k, _ in _walk(spec) if k == "url"]
    text = json.dumps({k: v for k, v in spec.items() if k != "$schema"})
    assert "http" not in text
    assert inline_rows(CHARTS[name]) <= style.MAX_POINTS + 100
    # the theme is applied: fonts at least 11 px everywhere it is set
    sizes = [v for k, v in _walk(spec) if k.lower().endswith("fontsize")]
    assert sizes and min(sizes) >= 11


def test_okabe_ito_palette_is_the_category_range():
    spec = CHARTS["scatter"].to_dict()
    assert spec["config"]["range"]["category"] == list(style.OKABE_ITO)
    scales = [v for k, v in _walk(spec) if k == "scale" and isinstance(v, dict) and "range" in v]
    colours = {c for s in scales for c in s["range"] if isinstance(c, str) and c.startswith("#")}
    assert colours and colours <= set(style.OKABE_ITO)


def test_architecture_chart_states_the_study_parameter_counts():
    spec = network_charts.architecture_chart(ArchSpec.study_e2e(), 5).to_dict()
    assert "87 parameters: 65 trainable, 22 non-trainable" in json.dumps(spec, ensure_ascii=False)
    rows = next(iter(spec["datasets"].values()))
    # input, BN, Dense, BN, output; the per-layer counts add up to ArchSpec's total
    assert [r["kind"] for r in rows] == ["input", "bn", "dense", "bn", "output"]
    assert sum(r["trainable"] for r in rows) == 65
    assert sum(r["non_trainable"] for r in rows) == 22
    z = network_charts.architecture_chart(ArchSpec.study_zscore(), 5).to_dict()
    assert "85 parameters: 85 trainable, 0 non-trainable" in json.dumps(z, ensure_ascii=False)


@pytest.mark.slow
def test_stage_boxplot_ships_only_the_summaries_for_a_million_rows():
    stages = make_stages(1_000_000 // (5 * 4 * 2), folds=2)  # 1,000,000 values in all
    assert len(stages) == 1_000_000
    quantiles = stage_quantiles(stages)
    for per_fold in (False, True):
        chart = bn_charts.stage_boxplot(quantiles, "Input BN", per_fold=per_fold)
        rows = inline_rows(chart)
        assert 0 < rows <= 2 * len(quantiles)  # a box and at most two extreme dots each
        assert len(json.dumps(chart.to_dict())) < 200_000
    with pytest.raises(ValueError, match="stage_quantiles"):
        bn_charts.stage_boxplot(stages, "Input BN")


def test_stage_boxplot_pooled_draws_one_box_per_unit_and_stage():
    quantiles = stage_quantiles(make_stages(30, folds=3))
    spec = bn_charts.stage_boxplot(quantiles, "Input BN").to_dict()
    boxes = [d for d in spec["datasets"].values() if d and "q1" in d[0] and "extreme" not in d[0]]
    assert sum(len(d) for d in boxes) == len(UNITS) * len(STAGES)
    assert all(r["fold"] == -1 for d in boxes for r in d)
    titles = [c["title"]["text"] for c in spec["concat"]]
    assert titles == [bn_charts.STAGE_TITLES[s] for s in STAGES]


def test_stage_boxplot_without_extremes_draws_no_stray_dots():
    quantiles = stage_quantiles(make_stages(30, folds=2))
    quantiles["min"], quantiles["max"] = quantiles["whisker_low"], quantiles["whisker_high"]
    spec = bn_charts.stage_boxplot(quantiles, "Input BN").to_dict()
    assert all(r["unit"] in UNITS for d in spec["datasets"].values() for r in d)


@pytest.mark.slow
def test_distributions_are_binned_on_the_server():
    rng = _rng(1)
    frame = pd.DataFrame({"Upre": rng.normal(150, 30, 1_000_000), "UF": rng.gamma(2, 1, 1_000_000),
                          "note": "text"})
    frame.loc[::1000, "Upre"] = np.nan
    chart = data_charts.distributions_chart(frame, ["Upre", "UF", "note"])
    data = next(iter(chart.to_dict()["datasets"].values()))
    assert len(data) <= 2 * 40
    by_var = pd.DataFrame(data).groupby("variable")["count"].sum()
    assert by_var["Upre (mg/dL)"] == 1_000_000 - 1000  # every finite value counted once
    assert by_var["UF (L)"] == 1_000_000


def test_gamma_scatter_samples_large_inputs_but_fits_all():
    sens = make_sensitivity(units=[f"u{k}" for k in range(5)], folds=2000, ablations=("zero",))
    chart = bn_charts.gamma_scatter(sens, make_lines(sens, "bias"), "bias", "zero")
    datasets = chart.to_dict()["datasets"].values()
    points = [d for d in datasets if d and "abs_gamma" in d[0]]
    assert sum(map(len, points)) == style.MAX_POINTS
    assert "3,000 of 10,000 points" in json.dumps(chart.to_dict(), ensure_ascii=False)


def test_gamma_scatter_labels_the_metric_and_mode():
    sens = make_sensitivity()
    text = json.dumps(bn_charts.gamma_scatter(sens, make_lines(sens, "bias"), "bias",
                                              "mean").to_dict(),
                      ensure_ascii=False)
    assert "bias |mean error| (the study's 'MSPE')" in text
    assert "training mean" in text
    text = json.dumps(bn_charts.gamma_scatter(sens, make_lines(sens, "delta_mse"), "delta_mse",
                                              "zero").to_dict(), ensure_ascii=False)
    assert "ΔMSE vs intact model" in text
    with pytest.raises(ValueError, match="not_a_metric"):
        bn_charts.gamma_scatter(sens, make_lines(sens, "bias"), "not_a_metric", "zero")


def test_side_by_side_scatter_samples_each_mode_within_the_budget():
    sens, lines = make_comparison(folds=2000)
    chart = bn_charts.input_mode_scatter(sens, lines, "bias", "zero")
    points = [d for d in chart.to_dict()["datasets"].values() if d and "abs_gamma" in d[0]]
    assert [len(d) for d in points] == [style.MAX_POINTS // 2] * 2


def test_error_axes_carry_the_unit_of_the_runs_target():
    """A run predicting something other than urea never gets mg/dL on its error axes."""
    sens = make_sensitivity()
    loss, _ = make_curves(epochs=20)
    figures = [
        bn_charts.gamma_scatter(sens, make_lines(sens, "rmse"), "rmse", "zero", target="albumin"),
        bn_charts.input_mode_scatter(*make_comparison(), "bias", "zero", target="albumin"),
        network_charts.baseline_chart(make_baselines(), target="albumin"),
        network_charts.loss_curves(loss, target="albumin"),
        network_charts.architecture_chart(ArchSpec.study_e2e(), 5, ["a", "b", "c", "d", "e"],
                                          target="albumin"),
        network_charts.grid_heatmap(make_grid(), target="albumin"),
    ]
    for chart in figures:
        text = json.dumps(chart.to_dict(), ensure_ascii=False)
        assert "mg/dL" not in text and "albumin" in text
    assert "units of albumin" in json.dumps(figures[0].to_dict(), ensure_ascii=False)
    assert style.metric_label("mse", "albumin") == "MSE, (units of albumin)²"
    assert style.metric_label("rmse", "PP") == "RMSE, kg"  # a study column keeps its unit
    assert style.metric_label("rmse") == style.METRIC_LABELS["rmse"] == "RMSE, mg/dL"
    assert style.metric_label("r2", "albumin") == "R² (dimensionless)"


@pytest.mark.slow
def test_a_runs_figures_follow_its_target():
    from bnapp.report import run_charts, run_report
    from tests.analyses.test_metrics import make_run

    run = make_run(ArchSpec())  # inputs a-d, target "y": no unit known for any of them
    tables = run_report.run_tables(run, n_permutations=2, n_boot=20, n_replicates=0)
    for name, chart in run_charts.run_figures(run, tables).items():
        assert "mg/dL" not in json.dumps(chart.to_dict(), ensure_ascii=False), name
    text = json.dumps(run_charts.run_figures(run, tables)["baselines"].to_dict(), ensure_ascii=False)
    assert "RMSE, units of y" in text


def test_trajectories_thin_epochs_within_the_point_budget():
    _, gamma = make_curves(epochs=1000, folds=10)
    assert len(gamma) == 50_000
    chart = network_charts.gamma_trajectories(gamma, band=False)
    assert 1000 <= inline_rows(chart) <= style.MAX_POINTS
    data = pd.DataFrame(next(iter(chart.to_dict()["datasets"].values())))
    assert data["epoch"].max() == 1000  # the last epoch is always kept


@given(epochs=st.integers(1, 400), folds=st.integers(1, 12),
       budget=st.sampled_from([style.SCREEN_LINE_POINTS, style.MAX_POINTS]))
@settings(max_examples=25, deadline=None)
def test_curves_keep_every_kth_epoch_within_a_budget_and_say_so(epochs, folds, budget):
    loss, gamma = make_curves(epochs=epochs, folds=folds)
    for chart, lines in ((network_charts.loss_curves(loss, max_points=budget), 2 * folds),
                         (network_charts.gamma_trajectories(gamma, band=False,
                                                            max_points=budget),
                          len(UNITS) * folds)):
        data = pd.DataFrame(next(iter(chart.to_dict()["datasets"].values())))
        kept = np.sort(data["epoch"].unique())
        step = int(np.ceil(epochs * lines / budget))
        assert len(data) <= budget + 2 * lines  # rounding up, and the last epoch on top
        assert kept[-1] == epochs and kept[0] == 1
        assert set(np.diff(kept[:-1])) <= {max(step, 1)}
        subtitle = json.dumps(chart.to_dict()["title"]["subtitle"])
        assert ("epoch drawn" in subtitle) == (step > 1)
        if step > 1:
            assert f"Every {step}" in subtitle


def test_empty_history_says_why():
    loss, gamma = make_curves(epochs=0)
    for chart in (network_charts.loss_curves(loss.iloc[:0]),
                  network_charts.gamma_trajectories(gamma.iloc[:0])):
        assert "No training history" in json.dumps(chart.to_dict())
        assert chart_png(chart)[:4] == b"\x89PNG"
    flat, _ = make_curves(epochs=5)
    zero = network_charts.loss_curves(flat.assign(loss=0.0, val_loss=np.nan))
    assert "not positive" in json.dumps(zero.to_dict())


def test_distributions_name_missing_columns():
    with pytest.raises(ValueError, match="Upos"):
        data_charts.distributions_chart(pd.DataFrame({"Upre": [1.0]}), ["Upre", "Upos"])


def test_parameter_chart_without_bn_says_so():
    per_fold = make_per_fold().assign(moving_std=np.nan, gamma=np.nan, beta=np.nan,
                                      moving_mean=np.nan)
    spec = bn_charts.parameter_chart(per_fold).to_dict()
    assert "no batch normalization" in json.dumps(spec)
    with_bn = bn_charts.parameter_chart(make_per_fold()).to_dict()
    assert len(with_bn["hconcat"]) == 3


@pytest.mark.slow
def test_hostile_text_is_drawn_as_text_in_svg():
    units = [XSS, MD, "<script>alert(1)</script>", "Upos", "&amp;"]
    sens = make_sensitivity(units=units, folds=4)
    figures = [
        bn_charts.gamma_scatter(sens, make_lines(sens, "bias"), "bias", "zero"),
        data_charts.distributions_chart(pd.DataFrame({XSS: [1.0, 2.0, 3.0], MD: [3.0, 4.0, 5.0]}),
                                        [XSS, MD]),
        network_charts.architecture_chart(ArchSpec.study_e2e(), 2, [XSS, MD]),
        bn_charts.stage_boxplot(stage_quantiles(make_stages(20, units=units, folds=2)), XSS),
    ]
    for chart in figures:
        root = ET.fromstring(chart_svg(chart))  # valid XML: nothing broke out of a text node
        tags = {el.tag.split("}")[-1] for el in root.iter()}
        assert not tags & {"img", "script", "foreignObject", "a", "iframe"}
        texts = " ".join("".join(el.itertext()) for el in root.iter() if el.tag.endswith("text"))
        assert XSS[:12] in texts or MD in texts


def test_builders_give_altair_channel_objects_not_shorthand(monkeypatch):
    """A channel given as a string ("x:Q") or an alt.value dict makes Altair hash its whole
    schema to find the class (~3 ms each; vega/altair#3547): tens of them were a third of a
    page's drawing time. Every builder, over a run's whole export and the what-if figures, gives
    channel objects instead."""
    from altair.utils import schemapi

    from bnapp.analyses import explain
    from bnapp.report import importance_charts, run_charts, run_report
    from tests.analyses.test_metrics import make_run

    parsed, hash_schema = [], schemapi._FromDict.__init__

    def counted(self, classes):
        parsed.append(self)
        hash_schema(self, classes)

    monkeypatch.setattr(schemapi._FromDict, "__init__", counted)
    run = make_run(ArchSpec.study_e2e())
    tables = run_report.run_tables(run, n_permutations=2, n_boot=50, n_replicates=0)
    figures = run_charts.run_figures(run, tables)
    view = explain.what_if(run, run.X[0])
    figures |= all_charts() | {
        "waterfall": importance_charts.shapley_waterfall(view.shapley, view.base_value),
        "session_ice": importance_charts.session_ice_chart(view.ice, view.shapley)}
    assert {"calibration_y", "bland_altman_network_y", "ice_pdp", "importance_input",
            "interval_coverage", "architecture", "grid"} <= set(figures)
    assert parsed == []
    # the one way back to strings: confirm the guard sees it
    alt.Chart(pd.DataFrame({"a": [1]})).encode(x="a:Q")
    assert len(parsed) == 1


def _colour_scale(spec: dict) -> dict:
    (rect, _) = spec["spec"]["layer"]
    return rect["encoding"]["color"]["scale"]


def test_grid_heatmap_colours_survive_one_exploding_network():
    grid = make_grid()
    calm = grid["cv_mse_mean"].dropna()
    grid.loc[calm.idxmax(), "cv_mse_mean"] = 1.0e36  # finite, but a training that exploded
    chart = network_charts.grid_heatmap(grid)
    spec = chart.to_dict()
    lo = float(calm.min())
    scale = _colour_scale(spec)
    rest = float(calm.nlargest(2).iloc[-1])  # the worst of the networks that did not explode
    assert scale["domain"] == [lo, min(rest, 10 * lo)] and scale["clamp"] is True
    assert any("share the darkest colour" in line for line in spec["title"]["subtitle"])


def test_grid_heatmap_spans_all_colours_when_no_network_is_far_off():
    grid = make_grid()
    grid["cv_mse_mean"] = grid["cv_mse_mean"].clip(upper=5 * grid["cv_mse_mean"].min())
    spec = network_charts.grid_heatmap(grid).to_dict()
    finite = grid["cv_mse_mean"].dropna()
    assert _colour_scale(spec)["domain"] == [finite.min(), finite.max()]
    assert not any("darkest" in line for line in spec["title"]["subtitle"])
