"""The Train, Grid search and Baselines pages in the user's urea unit (issue 27, item 1): the
sidebar's switch converts every error shown (an MSE by the factor squared) and names the unit;
R², p-values, γ and the grid's relative instability stay as they are."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pandas as pd
import pytest

from bnapp.analyses import baselines, stages
from bnapp.analyses.groups import gamma_rank_agreement, held_out_comparison
from bnapp.engine import grid
from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import GROUP_KFOLD, Protocol, grouped
from bnapp.intake import data
from bnapp.intake.groups import group_labels
from bnapp.intake.units import UREA_FACTORS
from bnapp.jobs import cache as result_cache
from bnapp.jobs.cached import cached_train
from bnapp.ui.state import RunEntry, run_label
from tests.apptest import app_at, demo_run, texts
from tests.ui.test_models_pages import chart_spec, chart_values, charts_on, seeded_grid

MMOL = UREA_FACTORS["mmol/L"]  # 6.006
BUN = UREA_FACTORS["BUN"]  # 2.144


def switch(at, unit: str):
    """Show urea in `unit` as the sidebar's "Show urea in" does (its key; AppTest runs only the
    page script after switch_page, without app.py's sidebar) and run the page again."""
    at.session_state["display_units"] = unit
    at.run()
    assert not at.exception
    return at


def headers(frame) -> dict[str, str]:
    return {name: value["label"] for name, value in json.loads(frame.proto.columns).items()
            if "label" in value}


def table_with(at, column: str):
    """The one table on the page that has `column`."""
    (found,) = [d for d in at.dataframe if column in d.value.columns]
    return found


# ------------------------------------------------------------------------------------- train

def test_the_train_page_shows_its_losses_and_result_in_the_unit_chosen():
    entry = demo_run()
    at = app_at("pages/train.py", runs=(entry,))
    gamma_mg = chart_values(charts_on(at)[2])
    switch(at, "mmol/L")
    architecture, loss, gamma = charts_on(at)
    names = {row.get("name") for row in chart_values(architecture)}
    assert "Output (1 unit): equilibrated urea Ueq (mmol/L)" in names
    assert chart_spec(loss)["layer"][0]["encoding"]["y"]["title"] == "loss: MSE, (mmol/L)²"
    rows = pd.DataFrame(chart_values(loss))
    curves, _ = stages.training_curves(entry.run)  # MSE in (mg/dL)²
    lines = rows[rows["series"] == "training"].set_index(["fold", "epoch"])["mse"]
    want = curves.set_index(["fold", "epoch"])["loss"].loc[lines.index] / MMOL**2
    np.testing.assert_allclose(lines, want, rtol=1e-9)
    dots = rows[rows["series"] == "test (held out)"].sort_values("fold")
    np.testing.assert_allclose(dots["mse"], stages.held_out_errors(entry.run)["mse"] / MMOL**2,
                               rtol=1e-9)
    assert chart_values(gamma) == gamma_mg  # γ has no unit
    result = at.dataframe[0]
    assert headers(result)["rmse"] == "RMSE (mmol/L)" and headers(result)["r2"] == "R²"
    pooled = baselines.baselines(entry.run).query("fold == 'pooled'")
    np.testing.assert_allclose(result.value["rmse"], pooled["rmse"] / MMOL, rtol=1e-12)
    np.testing.assert_allclose(result.value["mae"], pooled["mae"] / MMOL, rtol=1e-12)
    np.testing.assert_allclose(result.value["r2"], pooled["r2"], rtol=1e-12)
    assert "mmol/L" in texts(at) and "mg/dL" not in texts(at)  # the verdict sentence


# -------------------------------------------------------------------------------------- grid

def grid_in(unit: str):
    at = app_at("pages/grid.py")
    at.session_state["grid_result"] = seeded_grid()
    at.run()
    return switch(at, unit)


@pytest.mark.parametrize(("unit", "factor", "shown"), [("mmol/L", MMOL, "mmol/L"),
                                                       ("BUN", BUN, "BUN mg/dL")])
def test_the_grid_tables_and_heatmap_show_errors_in_the_unit_chosen(unit, factor, shown):
    at = grid_in(unit)
    frame = seeded_grid().set_index("label")
    for table in at.dataframe:  # best per mode, simplest within 1 SE, all
        named = headers(table)
        assert named["cv_rmse"] == f"√CV MSE ({shown})"
        assert named["cv_mse_mean"] == f"CV MSE (({shown})²)"
        assert named["cv_mse_sd"] == f"SD over folds (({shown})²)"
        got = table.value.set_index("label")
        want = frame.loc[got.index]
        np.testing.assert_allclose(got["cv_mse_mean"], want["cv_mse_mean"] / factor**2,
                                   rtol=1e-12)
        np.testing.assert_allclose(got["cv_mse_sd"], want["cv_mse_sd"] / factor**2, rtol=1e-12)
        np.testing.assert_allclose(got["cv_mse_se"], want["cv_mse_se"] / factor**2, rtol=1e-12)
        np.testing.assert_allclose(got["cv_rmse"], np.sqrt(want["cv_mse_mean"]) / factor,
                                   rtol=1e-12)
        np.testing.assert_allclose(got["instability"], want["instability"])  # relative
    # the ranking is the mg/dL one: the same networks are best and within 1 SE
    best = grid.best_per_mode(seeded_grid())
    assert list(at.dataframe[0].value["label"]) == list(best["label"])
    (heatmap,) = charts_on(at)
    assert f"({shown})²" in json.dumps(chart_spec(heatmap), ensure_ascii=False)
    cells = pd.DataFrame(chart_values(heatmap)).set_index("label")
    np.testing.assert_allclose(cells["cv_mse_mean"],
                               frame.loc[cells.index, "cv_mse_mean"] / factor**2, rtol=1e-12)
    assert f"errors are shown in {shown}" in texts(at)


# --------------------------------------------------------------------------------- baselines

def test_the_baselines_page_shows_errors_in_the_unit_chosen():
    entry = demo_run()
    at = switch(app_at("pages/baselines.py", runs=(entry,)), "mmol/L")
    want = baselines.baselines(entry.run)
    table = at.dataframe[0]
    assert headers(table)["rmse"] == "RMSE (mmol/L)" and headers(table)["r2"] == "R²"
    for column in ("rmse", "mae", "bias", "mean_error"):
        np.testing.assert_allclose(table.value[column], want[column] / MMOL, rtol=1e-12)
    np.testing.assert_allclose(table.value["r2"], want["r2"], rtol=1e-12)
    np.testing.assert_array_equal(table.value["n"], want["n"])

    paired, expected = at.dataframe[1], baselines.paired_comparison(entry.run)
    assert headers(paired)["difference"] == "difference (mmol/L)"
    assert headers(paired)["ci_low"] == "95% CI low (mmol/L)"
    for column in ("network_rmse", "baseline_rmse", "difference", "ci_low", "ci_high"):
        np.testing.assert_allclose(paired.value[column], expected[column] / MMOL, rtol=1e-12)
    for column in ("t_statistic", "p_value", "wilcoxon_p"):
        np.testing.assert_allclose(paired.value[column], expected[column], rtol=1e-12)

    (chart,) = charts_on(at)
    assert chart_spec(chart)["layer"][0]["encoding"]["x"]["title"] == "RMSE, mmol/L"
    pooled = {row["method"]: row["rmse"] for row in chart_values(chart)
              if row["fold"] == "pooled"}
    expected_pooled = want.query("fold == 'pooled'")
    assert pooled == pytest.approx(dict(zip(expected_pooled["method"],
                                            expected_pooled["rmse"] / MMOL, strict=True)))
    assert "in mmol/L" in at.selectbox(key="baselines-metric").label
    assert "mmol/L" in at.info[0].value and "mg/dL" not in at.info[0].value  # the verdict


def test_the_baselines_page_in_bun_and_its_r2_chart_unchanged():
    entry = demo_run()
    at = switch(app_at("pages/baselines.py", runs=(entry,)), "BUN")
    want = baselines.baselines(entry.run)
    assert headers(at.dataframe[0])["mae"] == "MAE (BUN mg/dL)"
    np.testing.assert_allclose(at.dataframe[0].value["mae"], want["mae"] / BUN, rtol=1e-12)
    at.selectbox(key="baselines-metric").set_value("r2").run()
    (chart,) = charts_on(at)
    assert "BUN" not in chart_spec(chart)["layer"][0]["encoding"]["x"]["title"]
    pooled = {row["method"]: row["r2"] for row in chart_values(chart) if row["fold"] == "pooled"}
    expected = want.query("fold == 'pooled'")
    assert pooled == pytest.approx(dict(zip(expected["method"], expected["r2"], strict=True)))


@cache
def grouped_run() -> tuple[data.Dataset, RunEntry]:
    """The study's network on the demo cohort with a patient column (4 sessions each), trained
    by grouped 3-fold cross-validation: the Baselines page's per-group section."""
    frame = data.demo_dataset().frame.copy()
    frame.insert(0, "patient_id", np.arange(len(frame)) // 4 + 1)
    ds = data.load_dataset(frame.to_csv(index=False).encode(), name="patients.csv")
    labels, cols = group_labels(ds, "patient_id"), list(data.STUDY_INPUTS)
    protocol = grouped(Protocol(folds=3, epochs=5, seed=0), GROUP_KFOLD, "patient_id", labels)
    spec = ArchSpec.study_e2e()
    run = cached_train(ds.X(cols), ds.y(), spec, protocol, features=cols,
                       target=data.STUDY_TARGET, data_key=ds.fingerprint(),
                       row_ids=ds.row_numbers, groups=labels, data_name=ds.name)
    key = result_cache.run_key(ds.fingerprint(), spec, protocol, cols, data.STUDY_TARGET)
    return ds, RunEntry(key, run_label(run, ds.name), run, ds.name)


def test_the_held_out_groups_show_errors_in_the_unit_chosen():
    ds, entry = grouped_run()
    at = app_at("pages/baselines.py", runs=(entry,))
    at.session_state["dataset"] = ds
    switch(at, "mmol/L")
    table = table_with(at, "held_out")
    assert headers(table)["rmse_minus_network"] == "baseline RMSE − network RMSE (mmol/L)"
    shown = table.value
    want = held_out_comparison(entry.run, group_labels(ds, "patient_id"))
    for column in ("rmse", "mae", "mean_error", "rmse_minus_network"):
        np.testing.assert_allclose(shown[column], want[column] / MMOL, rtol=1e-12)
    np.testing.assert_allclose(shown["r2"], want["r2"], rtol=1e-12)
    ranks = table_with(at, "spearman").value  # |γ| ranks: no unit
    np.testing.assert_allclose(ranks["spearman"],
                               gamma_rank_agreement(entry.run, group_labels(ds, "patient_id"))[
                                   "spearman"])


def test_the_error_measure_picked_survives_a_unit_switch():
    """The browser sends back the label of the option picked: options naming the shown unit
    would lose the choice when the unit is switched."""
    at = app_at(runs=(demo_run(),))
    at.switch_page("pages/baselines.py").run()
    at.selectbox(key="baselines-metric").set_value("mae").run()
    at.session_state["display_units"] = "BUN"
    at.run()
    assert not at.exception
    assert at.selectbox(key="baselines-metric").value == "mae"
    assert "in BUN mg/dL" in at.selectbox(key="baselines-metric").label
