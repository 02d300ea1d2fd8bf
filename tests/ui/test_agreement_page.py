"""The Agreement page and the Predict page's prediction interval, driven through AppTest."""

from __future__ import annotations

import json

import pytest

from bnapp.analyses import agreement, conformal
from bnapp.analyses.predict import predict_sessions
from bnapp.intake import data
from bnapp.report.style import METHOD_LABELS
from tests.apptest import app_at, demo_run, texts


def test_agreement_page_asks_for_a_run_first():
    at = app_at("pages/agreement.py")
    assert not at.exception
    assert "No trained network yet" in texts(at)


@pytest.mark.slow
def test_agreement_page_shows_bland_altman_calibration_and_coverage():
    entry = demo_run()
    at = app_at("pages/agreement.py", runs=(entry,))
    assert not at.exception
    text = texts(at)
    assert "How to read a Bland–Altman plot" in text and "CV+" in text
    expected = agreement.agreement(entry.run)
    shown = next(t for t in at.dataframe if "loa_high_ci_high" in t.value.columns).value
    assert shown["loa_high"].to_numpy() == pytest.approx(expected["loa_high"].to_numpy())
    assert set(shown["ci_method"]) == {"exact"}
    # share within, largest differences, agreement
    assert len(at.dataframe) == 3, "the numbers behind calibration and coverage wait to be opened"
    open_tables(at)
    assert any("slope_ci_low" in t.value.columns for t in at.dataframe)  # the calibration table
    coverage = next(t for t in at.dataframe if "coverage" in t.value.columns).value
    want = conformal.held_out_coverage(entry.run, 0.9)
    assert coverage["coverage"].to_numpy() == pytest.approx(want["coverage"].to_numpy())
    assert set(coverage["interval"]) == {"cv_plus", "split_conformal"}
    assert "CV+ (as Predict gives), nested" in text and "held-out split-conformal" in text
    charts = list(at.get("vega_lite_chart"))
    # share within, Bland–Altman of the method picked, calibration, coverage
    assert len(charts) == 1 + 1 + 2
    methods = list(dict.fromkeys(agreement.agreement_points(entry.run)["method"]))
    assert len(methods) == 4 and METHOD_LABELS[methods[0]] in _title(charts[1])
    at.button_group(key="agreement-method").set_value(methods[2]).run()
    assert not at.exception
    assert METHOD_LABELS[methods[2]] in _title(at.get("vega_lite_chart")[1])


def _shown(at, column: str):
    return next(t.value for t in at.dataframe if column in t.value.columns)


def test_the_share_within_the_acceptable_difference_follows_the_inputs():
    """Per method, the share of sessions within the entered difference, counted by hand from
    the differences, with its Wilson interval."""
    entry = demo_run()
    at = app_at("pages/agreement.py", runs=(entry,))
    assert not at.exception
    assert at.number_input(key="agreement-tolerance-mg/dL").value == 5.0
    assert at.number_input(key="agreement-dose-tolerance").value == 0.1
    points = agreement.agreement_points(entry.run)
    for tolerance, dose in ((5.0, 0.1), (12.0, 0.25)):
        at.number_input(key="agreement-tolerance-mg/dL").set_value(tolerance)
        at.number_input(key="agreement-dose-tolerance").set_value(dose).run()
        assert not at.exception
        share = _shown(at, "within")
        assert set(share["quantity"]) == {"Ueq", "eKt/V"}  # as users write it
        for row in share.itertuples():
            quantity = "eKtV" if row.quantity == "eKt/V" else row.quantity
            mine = points[(points["method"] == row.method) & (points["quantity"] == quantity)]
            allowed = dose if quantity == "eKtV" else tolerance
            assert row.within == int((mine["difference"].abs() <= allowed).sum())
            assert row.share == pytest.approx(row.within / len(mine))
            assert row.ci_low <= row.share <= row.ci_high
    title = _title(at.get("vega_lite_chart")[0])
    assert title == "Sessions within the acceptable difference, Ueq"


def test_the_largest_differences_name_their_row_in_the_data_file():
    entry = demo_run()
    at = app_at("pages/agreement.py", runs=(entry,))
    largest = _shown(at, "data_row")
    points = agreement.agreement_points(entry.run)
    mine = points[(points["method"] == "network") & (points["quantity"] == "Ueq")]
    top = mine.loc[mine["difference"].abs().sort_values(ascending=False).index[:10]]
    assert list(largest["data_row"]) == list(entry.run.row_ids[top["row"].to_numpy()])
    assert largest["difference"].to_numpy() == pytest.approx(top["difference"].to_numpy())
    tooltip = json.dumps(json.loads(at.get("vega_lite_chart")[1].proto.spec))
    assert "row in the data file" in tooltip and "acceptable difference" in tooltip


def test_no_label_glitches_reach_the_user():
    """eKt/V written as users write it, no doubled parentheses, tables at 3 significant
    figures."""
    entry = demo_run()
    at = app_at("pages/agreement.py", runs=(entry,))
    at.radio(key="agreement-quantity").set_value("eKtV").run()
    open_tables(at)
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    for spec in specs:
        words = json.dumps({k: v for k, v in spec.items() if k not in ("datasets", "data")})
        assert "eKtV" not in words and "))" not in words, words[:300]
    assert "eKtV" not in texts(at)
    for table in at.dataframe:
        assert "eKtV" not in set(table.value.get("quantity", []))
    config = json.loads(at.dataframe[2].proto.columns)  # the agreement table
    assert config["loa_high"]["type_config"]["format"] == "%.3g"


def open_tables(at) -> None:
    """Open the expanders holding the numbers behind the calibration and coverage figures."""
    for key in ("agreement-calibration-table", "agreement-coverage-table"):
        at.session_state[key] = True
    at.run()
    assert not at.exception


def _title(chart) -> str:
    return json.loads(chart.proto.spec)["title"]["text"]


@pytest.mark.slow
def test_agreement_controls_change_the_tables():
    entry = demo_run()
    at = app_at("pages/agreement.py", runs=(entry,))
    open_tables(at)
    at.selectbox(key="agreement-ci").set_value("approximate").run()
    at.slider(key="agreement-level").set_value(0.8).run()
    assert not at.exception
    shown = next(t for t in at.dataframe if "loa_high_ci_high" in t.value.columns).value
    assert set(shown["ci_method"]) == {"approximate"}
    coverage = next(t for t in at.dataframe if "coverage" in t.value.columns).value
    assert set(coverage["level"]) == {0.8}
    at.radio(key="agreement-quantity").set_value("eKtV").run()
    assert not at.exception
    # the plots now compare doses
    assert any("eKt/V" in str(c.proto.spec) for c in at.get("vega_lite_chart"))


def test_predict_page_shows_the_interval_and_the_dose_interval():
    entry = demo_run()
    at = app_at("pages/predict.py", runs=(entry,))
    assert not at.exception
    shown = at.dataframe[0].value
    assert {"ueq_network_pi_low", "ueq_network_pi_high", "ektv_network_pi_low",
            "ektv_network_pi_high"} <= set(shown.columns)
    first = shown.iloc[0]
    frame = data.parse_patient({c: first[c] for c in data.STUDY_INPUTS})
    expected = predict_sessions(entry.run, frame, level=0.9).iloc[0]
    assert first["ueq_network_pi_low"] == pytest.approx(expected["ueq_network_pi_low"])
    text = texts(at)
    assert (f"90% prediction interval: {expected['ueq_network_pi_low']:.1f} to "
            f"{expected['ueq_network_pi_high']:.1f}") in text
    assert (f"90% interval: {expected['ektv_network_pi_low']:.2f} to "
            f"{expected['ektv_network_pi_high']:.2f}") in text
    at.slider(key="predict-level").set_value(0.6).run()
    assert not at.exception
    narrower = at.dataframe[0].value.iloc[0]
    assert narrower["ueq_network_pi_high"] - narrower["ueq_network_pi_low"] < (
        first["ueq_network_pi_high"] - first["ueq_network_pi_low"])
    assert "60% prediction interval" in texts(at)


@pytest.mark.slow
def test_a_grouped_runs_largest_differences_name_their_group(tmp_path):
    """Four patients' folds on the demo cohort: each listed session's patient is its own, in
    the table and in the Bland–Altman tooltip."""
    from bnapp.engine.model import ArchSpec
    from bnapp.engine.protocols import Protocol, grouped
    from bnapp.intake.groups import group_labels
    from bnapp.jobs import cache
    from bnapp.jobs.cached import cached_train
    from bnapp.ui.state import RunEntry, run_label

    lines = data.DEMO_PATH.read_text().splitlines()
    path = tmp_path / "patients.csv"
    path.write_text("\n".join([lines[0] + ",patient"] + [
        f"{line},P{i % 4}" for i, line in enumerate(lines[1:])]) + "\n")
    ds = data.load_dataset(path)
    patients = group_labels(ds, "patient")
    protocol = grouped(Protocol(folds=4, epochs=3, seed=1), "group-kfold", "patient", patients)
    cols, spec = list(data.STUDY_INPUTS), ArchSpec.study_e2e()
    run = cached_train(ds.X(cols), ds.y(), spec, protocol, features=cols,
                       target=data.STUDY_TARGET, data_key=ds.fingerprint(),
                       row_ids=ds.row_numbers, groups=patients, data_name=ds.name)
    key = cache.run_key(ds.fingerprint(), spec, protocol, cols, data.STUDY_TARGET)
    at = app_at("pages/agreement.py", runs=(RunEntry(key, run_label(run, ds.name), run, ds.name),))
    at.session_state["dataset"] = ds
    at.run()
    assert not at.exception
    largest = _shown(at, "group")
    by_row = dict(zip(ds.row_numbers, patients, strict=True))
    assert len(largest) == 10
    assert list(largest["group"]) == [by_row[r] for r in largest["data_row"]]
    spec_text = json.dumps(json.loads(at.get("vega_lite_chart")[1].proto.spec))
    assert '"title": "patient"' in spec_text  # the tooltip names the group column
