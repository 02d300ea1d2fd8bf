"""The exports in the user's units and session lengths: the ZIP's tables, the HTML report, the
model card and `analyze` show urea in the unit asked for (the arithmetic stays in mg/dL) and use
the session lengths and access the pages use (issue 27, items 1 and 4)."""

from __future__ import annotations

import io
import shlex
import zipfile

import numpy as np
import pandas as pd
import pytest

from bnapp.analyses import agreement, baselines
from bnapp.analyses.layer_tables import parameter_tables
from bnapp.cli import build_parser, main
from bnapp.intake import data
from bnapp.intake.units import DisplayUnits
from bnapp.report import export, model_card, run_report
from bnapp.report.markup import unescape_md
from tests.apptest import demo_run

MMOL, BUN = 6.006, 2.144  # mg/dL of urea per mmol/L, and per mg/dL of BUN (rounded)
FAST = {"n_permutations": 2, "n_boot": 20}


@pytest.fixture(scope="module")
def raw():
    entry = demo_run()
    return entry, run_report.run_tables(entry.run, **run_report.analysis_options(**FAST),
                                        n_replicates=0)


def shown(tables, display: str, input_mode: str = "raw"):
    return export.shown_tables(tables, target=data.STUDY_TARGET, input_mode=input_mode,
                               display=DisplayUnits(display))


def input_rows(table: pd.DataFrame, unit: str) -> pd.DataFrame:
    return table[(table["layer"] == "input") & (table["unit"] == unit)]


def test_the_tables_in_mmol_are_the_mg_dl_ones_over_6006_and_unitless_ones_unchanged(raw):
    _, tables = raw
    mmol = shown(tables, "mmol/L")
    for col in ("rmse", "mae", "bias", "mean_error"):
        np.testing.assert_allclose(mmol["baselines"][col], tables["baselines"][col] / MMOL)
    pd.testing.assert_series_equal(mmol["baselines"]["r2"], tables["baselines"]["r2"])
    sens, sens_mmol = tables["sensitivity"], mmol["sensitivity"]
    np.testing.assert_allclose(sens_mmol["rmse"], sens["rmse"] / MMOL)
    np.testing.assert_allclose(sens_mmol["mse"], sens["mse"] / MMOL ** 2)
    np.testing.assert_allclose(sens_mmol["delta_mse"], sens["delta_mse"] / MMOL ** 2)
    for col in ("gamma", "abs_gamma", "mean_percent_error"):
        pd.testing.assert_series_equal(sens_mmol[col], sens[col])
    for name in ("association", "concordance", "verdict", "gamma_curves"):
        pd.testing.assert_frame_equal(mmol[name], tables[name])
    paired = tables["paired_comparison"]
    np.testing.assert_allclose(mmol["paired_comparison"]["difference"], paired["difference"] / MMOL)
    pd.testing.assert_series_equal(mmol["paired_comparison"]["p_value"], paired["p_value"])
    np.testing.assert_allclose(mmol["loss_curves"]["loss"],
                               tables["loss_curves"]["loss"] / MMOL ** 2)
    np.testing.assert_allclose(mmol["predictions"]["predicted"],
                               tables["predictions"]["predicted"] / MMOL)


def test_agreement_converts_ueq_rows_only_and_keeps_slopes(raw):
    _, tables = raw
    mmol = shown(tables, "mmol/L")
    lib, conv = tables["agreement"], mmol["agreement"]
    ueq = lib["quantity"] == "Ueq"
    assert ueq.any() and (~ueq).any()
    for col in ("bias", "loa_low", "loa_high_ci_high", "sd"):
        np.testing.assert_allclose(conv.loc[ueq, col], lib.loc[ueq, col] / MMOL)
        np.testing.assert_allclose(conv.loc[~ueq, col], lib.loc[~ueq, col])  # eKt/V
    pd.testing.assert_series_equal(conv["proportional_slope"], lib["proportional_slope"])
    pd.testing.assert_series_equal(mmol["calibration"]["slope"], tables["calibration"]["slope"])
    share = mmol["share_within"].set_index("quantity")["tolerance"]
    assert share["Ueq"].iloc[0] == pytest.approx(5.0 / MMOL) and share["eKtV"].iloc[0] == 0.1
    pd.testing.assert_series_equal(mmol["share_within"]["share"], tables["share_within"]["share"])


def test_inputs_are_shown_in_their_own_unit(raw):
    _, tables = raw
    mmol = shown(tables, "mmol/L")
    params, conv = tables["bn_parameters"], mmol["bn_parameters"]
    for unit, factor in (("Upre", MMOL), ("PP", 1.0)):  # the raw network's BN sees mg/dL and kg
        lib, new = input_rows(params, unit), input_rows(conv, unit)
        np.testing.assert_allclose(new["moving_mean_mean"], lib["moving_mean_mean"] / factor)
        np.testing.assert_allclose(new["moving_std_sd"], lib["moving_std_sd"] / factor)
        pd.testing.assert_series_equal(new["gamma_mean"], lib["gamma_mean"])
        pd.testing.assert_series_equal(new["beta_mean"], lib["beta_mean"])
    stages, conv = tables["stage_quantiles"], mmol["stage_quantiles"]
    upre = input_rows(stages, "Upre")
    raw_rows = upre["stage"] == "raw"
    np.testing.assert_allclose(input_rows(conv, "Upre").loc[raw_rows[raw_rows].index, "median"],
                               upre.loc[raw_rows, "median"] / MMOL)
    pd.testing.assert_frame_equal(conv[conv["stage"] != "raw"], stages[stages["stage"] != "raw"])
    imp, conv = tables["importance"], mmol["importance"]
    shap, ablation = imp["definition"] == "shapley", imp["definition"] == "ablation_zero"
    np.testing.assert_allclose(conv.loc[shap, "importance"], imp.loc[shap, "importance"] / MMOL)
    np.testing.assert_allclose(conv.loc[ablation, "importance"],
                               imp.loc[ablation, "importance"] / MMOL ** 2)
    ice, conv = tables["ice"], mmol["ice"]
    upre, pp = ice["unit"] == "Upre", ice["unit"] == "PP"
    assert upre.any() and pp.any()
    np.testing.assert_allclose(conv.loc[upre, "value"], ice.loc[upre, "value"] / MMOL)
    np.testing.assert_allclose(conv.loc[pp, "value"], ice.loc[pp, "value"])
    np.testing.assert_allclose(conv["prediction"], ice["prediction"] / MMOL)  # of Ueq


def test_bun_divides_by_2144_and_mg_dl_changes_nothing(raw):
    _, tables = raw
    bun = shown(tables, "BUN")
    np.testing.assert_allclose(bun["baselines"]["rmse"], tables["baselines"]["rmse"] / BUN,
                               rtol=1e-4)
    np.testing.assert_allclose(bun["sensitivity"]["mse"], tables["sensitivity"]["mse"] / BUN ** 2,
                               rtol=2e-4)
    same = shown(tables, "mg/dL")
    for name, table in tables.items():
        pd.testing.assert_frame_equal(same[name], table)


def test_a_z_scored_network_keeps_its_bn_statistics_and_shows_its_scaler():
    run = demo_run("zscore").run
    tables = {"bn_parameters_per_fold": parameter_tables(run)["bn_parameters_per_fold"]}
    lib = input_rows(tables["bn_parameters_per_fold"], "Upre")
    new = input_rows(shown(tables, "mmol/L", "zscore")["bn_parameters_per_fold"], "Upre")
    pd.testing.assert_series_equal(new["moving_mean"], lib["moving_mean"])  # of z-scores
    np.testing.assert_allclose(new["scaler_mean"], lib["scaler_mean"] / MMOL)
    np.testing.assert_allclose(new["scaler_std"], lib["scaler_std"] / MMOL)


def zip_table(bundle, name: str) -> pd.DataFrame:
    with zipfile.ZipFile(io.BytesIO(bundle.zip_bytes)) as archive:
        return pd.read_csv(io.BytesIO(archive.read(f"tables/{name}.csv")), dtype={"fold": str})


def exported(entry, options):
    tables = run_report.run_tables(entry.run, **run_report.table_options(options),
                                   n_replicates=0)
    return run_report.build_export(entry.run, tables, {}, run_key=entry.key,
                                   data_name=entry.data_name, dataset=data.demo_dataset(),
                                   options=options)


def test_the_export_uses_the_session_length_and_shows_mmol():
    entry = demo_run()
    run = entry.run
    options = run_report.export_options(DisplayUnits("mmol/L"), t_hours=3.0, access="venous",
                                        **FAST)
    bundle = exported(entry, options)
    # computed apart: the analyses at 3 h through a venous access, in mg/dL, over 6.006
    expected = baselines.baselines(run, t_hours=3.0, access="venous")
    base = zip_table(bundle, "baselines")
    np.testing.assert_allclose(base["rmse"], expected["rmse"] / MMOL)
    np.testing.assert_allclose(base["r2"], expected["r2"])
    at_4h = baselines.baselines(run)
    formula = expected["method"] == "rate_equation"
    assert not np.allclose(expected.loc[formula, "rmse"], at_4h.loc[formula, "rmse"])
    agree = agreement.agreement(run, t_hours=3.0, access="venous")
    table = zip_table(bundle, "agreement")
    dose = agree["quantity"] == "eKtV"
    np.testing.assert_allclose(table.loc[dose, "bias"], agree.loc[dose, "bias"])
    np.testing.assert_allclose(table.loc[~dose, "bias"], agree.loc[~dose, "bias"] / MMOL)

    html = bundle.html
    assert "180 minutes for every session; venous access" in html
    assert "Results shown in" in html and "mmol/L for urea" in html
    assert "RMSE, MAE and mean errors in mmol/L" in html
    card = unescape_md(model_card.model_card(run, run_report.run_tables(
        run, **run_report.table_options(options), n_replicates=0), data_name=entry.data_name,
        **run_report.presentation(options)))
    assert "- Results shown in: mmol/L for urea" in card
    assert "- Session length used by the formulas and eKt/V: 180 minutes for every session; " \
           "venous access" in card
    assert "Ueq (mmol/L)" in card and "mg/dL" not in card.split("## Known limits")[0].replace(
        "Urea units in the file: urea mg/dL", "")
    settings = zip_table(bundle, "settings").set_index("setting")["value"]
    assert '"--minutes", "180"' not in settings["cli_command"]  # JSON of the command's text
    assert "--minutes 180 --access venous --show-units mmol/L" in settings["cli_command"]


def test_a_length_per_session_reaches_the_tables_and_the_report():
    entry = demo_run()
    run = entry.run
    hours = np.linspace(3.0, 5.0, len(run.y))
    options = run_report.export_options(DisplayUnits("mg/dL"), "Td", t_hours=hours, **FAST)
    bundle = exported(entry, options)
    expected = baselines.baselines(run, t_hours=hours)
    np.testing.assert_allclose(zip_table(bundle, "baselines")["rmse"], expected["rmse"])
    assert "each session's own, 180–300 minutes (median 240), from column Td" in bundle.html
    command, differences = run_report.cli_command(run, entry.data_name, options)
    assert "--length-column=Td" in command and differences == []


def test_the_cli_command_carries_the_units_and_length():
    entry = demo_run()
    options = run_report.export_options(DisplayUnits("BUN"), t_hours=2.5, **FAST)
    command, differences = run_report.cli_command(entry.run, entry.data_name, options)
    args = build_parser().parse_args(shlex.split(command)[3:])
    assert (args.show_units, args.minutes, args.access, args.length_column) == (
        "BUN", 150.0, "arterial", None)
    assert differences == []
    default, _ = run_report.cli_command(entry.run, entry.data_name,
                                        run_report.analysis_options())
    assert "--minutes" not in default and "--show-units" not in default


def test_analyze_refuses_a_unit_it_does_not_know(tmp_path, capsys):
    code = main(["analyze", "--data", str(data.DEMO_PATH), "--show-units", "mol/m3",
                 "--out", str(tmp_path / "o")])
    assert code == 2 and "mol/m3" in capsys.readouterr().err


@pytest.mark.slow
def test_analyze_writes_mmol_tables_for_180_minute_sessions(tmp_path):
    common = ["analyze", "--data", str(data.DEMO_PATH), "--arch", "4", "--folds", "3",
              "--epochs", "5", "--seed", "1", "--n-boot", "20", "--permutations", "2"]
    assert main([*common, "--out", str(tmp_path / "mg")]) == 0
    assert main([*common, "--out", str(tmp_path / "mmol"), "--show-units", "mmol/L",
                 "--minutes", "180"]) == 0
    mg = pd.read_csv(tmp_path / "mg" / "baselines.csv", dtype={"fold": str})
    mmol = pd.read_csv(tmp_path / "mmol" / "baselines.csv", dtype={"fold": str})
    network = mg["method"] == "network"  # the network needs no session length
    np.testing.assert_allclose(mmol.loc[network, "rmse"], mg.loc[network, "rmse"] / MMOL)
    np.testing.assert_allclose(mmol["r2"][network], mg["r2"][network])
    formula = mg["method"] == "rate_equation"
    assert not np.allclose(mmol.loc[formula, "rmse"], mg.loc[formula, "rmse"] / MMOL)  # 180 min
    card = (tmp_path / "mmol" / "model_card.md").read_text()
    assert "Results shown in: mmol/L" in card and "180 minutes for every session" in card
    sens_mg = pd.read_csv(tmp_path / "mg" / "sensitivity.csv")
    sens = pd.read_csv(tmp_path / "mmol" / "sensitivity.csv")
    np.testing.assert_allclose(sens["mse"], sens_mg["mse"] / MMOL ** 2)
    pd.testing.assert_series_equal(sens["gamma"], sens_mg["gamma"])
