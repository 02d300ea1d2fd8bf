"""The Data page: uploads (kept or refused), column mapping and units, the report, the column choice."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from markdown_it import MarkdownIt

from bnapp.engine.model import ArchSpec
from bnapp.intake import data
from bnapp.intake.simulator import simulate_cohort
from bnapp.jobs import cache as result_cache
from bnapp.jobs.cached import cached_train
from bnapp.report import style
from bnapp.report.agreement_charts import quantity_label
from bnapp.ui import widgets
from bnapp.ui.state import RunEntry
from tests.apptest import SMALL, app_at, demo_run, texts
from tests.page_payload import chart_rows, table_rows

PAGE = "pages/data.py"
MMOL_PER_MG_DL = 1 / 6.006  # urea: 60.06 g/mol, so 1 mmol/L = 6.006 mg/dL


@pytest.fixture(scope="module")
def demo_frame() -> pd.DataFrame:
    return pd.read_csv(data.DEMO_PATH)


def upload(at, name: str, content: bytes):
    at.file_uploader(key="upload").set_value((name, content, "text/csv")).run()
    assert not at.exception
    return at


def current(at) -> data.Dataset:
    return at.session_state["dataset"]


def summary_rows(at) -> pd.DataFrame:
    frames = [d.value for d in at.dataframe if "median" in d.value.columns]
    assert len(frames) == 1
    return frames[0].set_index("variable")


def in_mmol(frame: pd.DataFrame, tmp_path, headers: dict[str, str] | None = None) -> bytes:
    """The frame with urea in mmol/L (2 decimals), written to a CSV under tmp_path."""
    out = frame.copy()
    for col in ("Upre", "U120", "Upos", "Ueq"):
        out[col] = (out[col] * MMOL_PER_MG_DL).round(2)
    path = tmp_path / "sessions_mmol.csv"
    out.rename(columns=headers or {}).to_csv(path, index=False)
    return path.read_bytes()


def test_the_demo_cohort_is_shown_and_called_synthetic(demo_frame):
    at = app_at(PAGE)
    assert not at.exception
    assert "synthetic" in texts(at)
    assert "No row was dropped" in texts(at)
    summary = summary_rows(at)
    assert summary.loc["Ueq", "n"] == len(demo_frame)
    assert summary.loc["Upre", "median"] == pytest.approx(demo_frame["Upre"].median())
    assert summary.loc["PP", "unit"] == "kg"
    assert len(at.get("vega_lite_chart")) == 1  # the distributions


def test_an_upload_replaces_the_data_and_lists_dropped_rows(urea_csv):
    at = upload(app_at(PAGE), "Urea.csv", urea_csv.read_bytes())
    ds = current(at)
    reference = data.load_dataset(urea_csv)
    assert (ds.name, ds.n_usable, ds.n_dropped) == ("Urea.csv", reference.n_usable,
                                                     reference.n_dropped)
    assert ds.n_dropped > 0
    assert "synthetic" not in texts(at)
    shown = [d.value for d in at.dataframe if list(d.value.columns) == list(ds.dropped.columns)]
    assert len(shown) == 1 and len(shown[0]) == len(reference.dropped)
    downloads = {b.key for b in at.get("download_button")}
    assert {"csv-dropped-rows", "xlsx-dropped-rows", "report-txt"} <= downloads
    assert summary_rows(at).loc["Upre", "n"] == reference.n_usable
    # the extra numeric columns of the study's file can be chosen as inputs
    assert "Ktveq" in at.multiselect(key="data_features").options


def test_an_xlsx_upload_is_read(demo_frame):
    buffer = io.BytesIO()
    demo_frame.head(40).to_excel(buffer, index=False)
    at = upload(app_at(PAGE), "sessions.xlsx", buffer.getvalue())
    assert (current(at).name, current(at).n_usable) == ("sessions.xlsx", 40)


def test_a_refused_upload_keeps_the_previous_data(urea_csv, tmp_path):
    at = upload(app_at(PAGE), "Urea.csv", urea_csv.read_bytes())
    before = current(at)
    hostile = "[x](javascript:alert(1)) <img src=x onerror=alert(1)>.csv"
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"%PDF-1.4 not a table")
    upload(at, hostile, bad.read_bytes())
    assert current(at) is before
    assert (current(at).name, current(at).n_usable) == ("Urea.csv", before.n_usable)
    message = at.error[0].value
    assert "PDF" in message
    html = MarkdownIt("commonmark").render(message)  # the file name is shown, never rendered
    assert "<a " not in html and "<img" not in html and "javascript:alert(1)" in html
    assert "Urea" in texts(at)  # says which data set is still in use


def test_the_same_upload_is_not_read_again_on_later_runs(urea_csv):
    at = upload(app_at(PAGE), "Urea.csv", urea_csv.read_bytes())
    at.button(key="demo").click().run()
    assert current(at).name == data.DEMO_PATH.name
    at.run()  # the uploader still holds Urea.csv: it must not replace the demo again
    assert current(at).name == data.DEMO_PATH.name


def test_a_demo_cohort_that_cannot_be_read_is_a_message_and_keeps_the_data(urea_csv,
                                                                          monkeypatch):
    at = upload(app_at(PAGE), "Urea.csv", urea_csv.read_bytes())
    before = current(at)

    def unreadable():
        raise PermissionError(13, "Permission denied", str(data.DEMO_PATH))

    monkeypatch.setattr(data, "demo_dataset", unreadable)
    at.button(key="demo").click().run()
    assert not at.exception and current(at) is before
    assert "Something went wrong while loading the demo cohort (PermissionError)" in at.error[0].value


@pytest.mark.slow
def test_a_large_upload_sends_summaries_not_its_rows():
    n = 200_000
    content = simulate_cohort(n, seed=1).to_csv(index=False).encode()
    at = upload(app_at(PAGE), "large.csv", content)
    assert current(at).n_read == n
    charts_sent = chart_rows(at)
    assert charts_sent and max(charts_sent) <= style.MAX_POINTS
    assert table_rows(at) <= widgets.MAX_TABLE_ROWS


def test_choosing_the_urea_unit_converts_the_values(demo_frame, tmp_path):
    content = in_mmol(demo_frame, tmp_path)
    at = upload(app_at(PAGE), "sessions_mmol.csv", content)
    as_mg = current(at)
    assert any("mmol/L" in w.value for w in at.warning)  # values too low for mg/dL
    at.selectbox(key="data_units").set_value("mmol/L")
    at.button(key="apply_mapping").click().run()
    assert not at.exception
    converted = current(at)
    assert converted is not as_mg and converted.units == "mmol/L"
    written = pd.read_csv(io.BytesIO(content))
    rows = converted.row_numbers - 2  # spreadsheet row numbers, header = row 1
    np.testing.assert_allclose(converted.frame["Upre"], written["Upre"].to_numpy()[rows] * 6.006)
    np.testing.assert_allclose(converted.frame["PP"], written["PP"].to_numpy()[rows])
    assert not any("mmol/L" in w.value for w in at.warning)


def test_a_column_mapping_loads_a_file_whose_names_are_not_recognised(demo_frame, tmp_path):
    content = in_mmol(demo_frame, tmp_path, headers={"Upre": "first sample", "Ueq": "rebound"})
    at = upload(app_at(PAGE), "sessions_mmol.csv", content)
    assert current(at).name == data.DEMO_PATH.name  # refused: Upre and Ueq not found
    # a prompt to map them (amber), not an error, with the mapping open beside it
    assert not at.error
    prompt = at.warning[0].value
    assert "Which column holds Upre, Ueq?" in prompt
    assert at.expander[0].proto.expanded
    assert at.selectbox(key="map_Upre").value is None
    assert at.selectbox(key="map_Upos").value == "Upos"  # detected columns are preselected
    assert at.selectbox(key="map_Upre").label == "pre-dialysis urea Upre (mg/dL)"
    assert at.selectbox(key="map_Upre").options == data.read_headers(content, "s.csv")
    at.selectbox(key="map_Upre").set_value("first sample")
    at.selectbox(key="map_Ueq").set_value("rebound")
    at.selectbox(key="data_units").set_value("mmol/L")
    at.button(key="apply_mapping").click().run()
    assert not at.exception and not at.error
    ds = current(at)
    assert ds.name == "sessions_mmol.csv" and ds.mapping["Upre"] == "first sample"
    written = pd.read_csv(io.BytesIO(content))
    rows = ds.row_numbers - 2
    np.testing.assert_allclose(ds.y(), written["rebound"].to_numpy()[rows] * 6.006)
    assert ds.n_usable == len(demo_frame)


def test_inputs_and_target_are_stored_and_a_bad_choice_is_refused():
    at = app_at(PAGE)
    at.multiselect(key="data_features").set_value(["Upre", "Upos", "UF"])
    at.selectbox(key="data_target").set_value("U120").run()
    assert not at.exception
    assert (at.session_state["features"], at.session_state["target"]) == (
        ["Upre", "Upos", "UF"], "U120")
    at.selectbox(key="data_target").set_value("Upre").run()  # also an input: refused
    assert "both an input and the target" in at.error[0].value
    assert (at.session_state["features"], at.session_state["target"]) == (
        ["Upre", "Upos", "UF"], "U120")
    at.multiselect(key="data_features").set_value([]).run()
    assert "at least one input" in at.error[0].value
    assert at.session_state["features"] == ["Upre", "Upos", "UF"]


def test_the_column_choice_survives_a_visit_to_another_page():
    at = app_at(PAGE)
    at.multiselect(key="data_features").set_value(["Upre", "Upos"]).run()
    at.switch_page("pages/train.py").run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.multiselect(key="data_features").value == ["Upre", "Upos"]


def test_inputs_computed_from_the_target_are_warned_about(urea_csv, demo_frame):
    at = app_at(PAGE)
    assert not any("computed from the target" in w.value for w in at.warning)  # the demo
    upload(at, "Urea.csv", urea_csv.read_bytes())
    (warning,) = [w.value for w in at.warning if "computed from the target" in w.value]
    assert warning.startswith("Probably computed from the target Ueq: **Req**, **Ktveq**.")
    shown = warning.replace("\\", "")  # as rendered: without the Markdown escapes
    assert "with Upre, U120, Upos, PP, UF it explains 100.0 % of the Ueq variance" in shown
    assert all(n not in warning.split(".")[0] for n in ("Uann", "centro", "Upos,"))
    report = [c.value for c in at.code if "rows read" in c.value]
    assert len(report) == 1 and "warning: Ktveq is probably computed" in report[0]
    # the warning follows the chosen target: with U120 as target, Req and Ktveq are no leak
    at.multiselect(key="data_features").set_value(["Upre", "Upos"])
    at.selectbox(key="data_target").set_value("U120").run()
    assert not any("computed from the target" in w.value for w in at.warning)


def test_a_leaking_column_name_is_shown_not_rendered(demo_frame):
    hostile = "[x](javascript:alert(1)) <img src=x onerror=alert(1)>"
    frame = demo_frame.assign(**{hostile: demo_frame["Ueq"] / demo_frame["Upre"]})
    at = upload(app_at(PAGE), "leak.csv", frame.to_csv(index=False).encode())
    (warning,) = [w.value for w in at.warning if "computed from the target" in w.value]
    html = MarkdownIt("commonmark").render(warning)
    assert "<a " not in html and "<img" not in html and "javascript:alert(1)" in html


def with_patients(frame: pd.DataFrame) -> bytes:
    """The sessions with a patient id (3-5 sessions each), a centre and a length in minutes."""
    out = frame.copy()
    sizes = np.resize([3, 4, 5], len(out))
    out.insert(0, "patient_id", np.repeat(np.arange(len(out)), sizes)[:len(out)] + 1000)
    out["centro"] = np.where(out.index % 2, 1, 2)
    out["Td (min)"] = np.where(out.index % 3, 240.0, 210.0)
    return out.to_csv(index=False).encode()


def test_a_patient_id_preselects_grouped_validation_and_is_not_drawn(demo_frame):
    at = upload(app_at(PAGE), "patients.csv", with_patients(demo_frame))
    assert ("Grouped validation keeps the sessions of each **patient\\_id** together"
            in texts(at))
    variables = set(summary_rows(at).index)
    assert {"Upre", "Td (min)"} <= variables and not {"patient_id", "centro"} & variables
    at.switch_page("pages/train.py").run()
    assert at.radio(key="proto_kind").value == "group-kfold"
    assert at.selectbox(key="proto_group_by").value == "patient_id"
    at.switch_page("pages/grid.py").run()
    assert at.selectbox(key="grid-group-by").value == "patient_id"


def test_the_choice_of_inputs_comes_before_the_report(demo_frame):
    at = app_at(PAGE)
    headers = [h.value for h in at.header]
    assert headers.index("Inputs and target") < headers.index("What was read")
    assert headers.index("What was read") < headers.index("Distributions")


def test_the_ueq_rule_tolerance_and_keep_and_flag(urea_csv):
    at = upload(app_at(PAGE), "Urea.csv", urea_csv.read_bytes())
    assert "The rule that drops the most rows: Ueq < Upos (20 of the 129 rows read" in texts(at)
    raw = pd.read_csv(urea_csv)
    within = int(((raw.Ueq < raw.Upos) & (raw.Ueq >= raw.Upos * 0.9)).sum())
    at.number_input(key="ueq_tolerance").set_value(10.0)
    at.button(key="apply_mapping").click().run()
    assert current(at).n_dropped == 20 - within
    at.toggle(key="ueq_keep").set_value(True)
    at.button(key="apply_mapping").click().run()
    assert not at.exception
    assert current(at).n_usable == 129 and len(current(at).flagged) == 20 - within
    assert f"{20 - within} rows kept though Ueq is below Upos" in texts(at)


def test_a_length_column_is_found_and_reaches_the_predict_formulas(demo_frame):
    at = upload(app_at(PAGE), "patients.csv", with_patients(demo_frame))
    assert at.selectbox(key="length_column").value == "Td (min)"
    assert r"Td \(min\) read in minutes: sessions of 3.50–4.00 h." in texts(at)
    at.selectbox(key="length_column").set_value("one length for every session").run()
    at.number_input(key="length_minutes").set_value(210.0).run()
    at.selectbox(key="length_access").set_value("venous").run()
    assert at.session_state["session_length"].minutes == 210.0
    at.session_state["runs"] = {demo_run().key: demo_run()}
    at.session_state["active_run"] = demo_run().key
    at.switch_page("pages/predict.py").run()
    assert not at.exception
    assert at.number_input(key="predict-hours").value == 3.5
    row = at.dataframe[0].value.iloc[0]
    upre, upos, pp, uf = (row[c] for c in ("Upre", "Upos", "PP", "UF"))
    r, t = upos / upre, 3.5
    sp = -math.log(r - 0.008 * t) + (4 - 3.5 * r) * uf / (pp - uf)
    assert row["spktv"] == pytest.approx(sp, rel=1e-9)
    assert row["ektv_rate_equation"] == pytest.approx(sp - 0.47 * sp / t + 0.02, abs=1e-9)


def patients_run(demo_frame, page: str):
    """The app on `page` with the patients' file loaded and a small run trained on it, and the
    data set with its session lengths in hours."""
    at = upload(app_at(PAGE), "patients.csv", with_patients(demo_frame))
    ds = current(at)
    cols = list(data.STUDY_INPUTS)
    run = cached_train(ds.X(cols), ds.y(), ArchSpec.study_e2e(), SMALL, features=cols,
                       target=data.STUDY_TARGET, data_key=ds.fingerprint(),
                       row_ids=ds.row_numbers, data_name=ds.name)
    key = result_cache.run_key(ds.fingerprint(), ArchSpec.study_e2e(), SMALL, cols,
                               data.STUDY_TARGET)
    at.session_state["runs"] = {key: RunEntry(key, "patients", run, ds.name)}
    at.session_state["active_run"] = key
    at.switch_page(page).run()
    assert not at.exception
    return at, ds.frame, ds.frame["Td (min)"].to_numpy() / 60


def hand_doses(x: pd.DataFrame, t: np.ndarray, ueq) -> tuple[np.ndarray, np.ndarray]:
    """(spKt/V from Upos, the Daugirdas dose Ueq implies), by hand, sessions of t hours."""
    w = x["PP"] - x["UF"]

    def daugirdas(u):
        r = u / x["Upre"]
        return (-np.log(r - 0.008 * t) + (4 - 3.5 * r) * x["UF"] / w).to_numpy()
    return daugirdas(x["Upos"]), daugirdas(ueq)


def test_each_sessions_length_reaches_the_agreement_of_ekt_v(demo_frame):
    at, x, t = patients_run(demo_frame, "pages/agreement.py")
    table = next(d.value for d in at.dataframe if "loa_high_ci_high" in d.value.columns)
    dose = quantity_label("eKtV")  # the table shows the quantity as users read it
    row = table[(table["method"] == "rate_equation") & (table["quantity"] == dose)].iloc[0]
    sp, measured = hand_doses(x, t, x["Ueq"])
    predicted = sp - 0.6 * sp / t + 0.03  # the rate equation's dose, each session's own t
    assert row["bias"] == pytest.approx(np.mean(predicted - measured), rel=1e-9)


def test_each_sessions_length_reaches_the_baselines_formulas(demo_frame):
    at, x, t = patients_run(demo_frame, "pages/baselines.py")
    (table,) = [d.value for d in at.dataframe if "rmse" in d.value.columns]
    pooled = table[(table["method"] == "rate_equation") & (table["fold"] == "pooled")].iloc[0]
    sp, _ = hand_doses(x, t, x["Ueq"])
    ektv = sp - 0.6 * sp / t + 0.03
    # the formula's Ueq is the one whose Daugirdas dose is that eKt/V: solve by bisection
    low, high = x["Upos"].to_numpy() * 0.5, x["Upre"].to_numpy() * 1.0
    for _ in range(200):
        mid = (low + high) / 2
        dose = hand_doses(x, t, mid)[1]
        low, high = np.where(dose > ektv, mid, low), np.where(dose > ektv, high, mid)
    rmse = math.sqrt(np.mean((low - x["Ueq"].to_numpy()) ** 2))
    assert pooled["rmse"] == pytest.approx(rmse, rel=1e-9)
