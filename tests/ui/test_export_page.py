"""The Export page: what to do without a run, and one background build giving the ZIP and the
HTML report, found again by a reloaded page."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from streamlit.testing.v1 import AppTest

from bnapp.intake import data
from bnapp.jobs.scheduler import Job, job_manager
from tests.apptest import APP, app_at, demo_run, texts

PAGE = "pages/export.py"
WAIT_SECONDS = 600  # a bound for a hung build, not a speed requirement


def export_job(at: AppTest) -> Job:
    """The export job this session submitted last (the page polls it; the test waits for it)."""
    jobs = [job_manager().get(i) for i in at.session_state["job_ids"]]
    return [j for j in jobs if j.kind == "export"][-1]


def build(at: AppTest) -> AppTest:
    """Click Build: the page shows the job's progress; once the job is done, the downloads."""
    at.button(key="export-build").click().run()
    assert not at.exception
    job = export_job(at)
    assert job.state == "done" or at.get("progress") or "queued" in texts(at)
    assert job.wait(WAIT_SECONDS) and job.state == "done", job.error
    return at.run()


def small_build(at: AppTest) -> AppTest:
    """Few shuffles and resamples: the analyses take a moment; drawing the figures is the rest."""
    at.number_input(key="export-permutations").set_value(2)
    at.number_input(key="export-boot").set_value(20)
    return build(at)


def downloads(at: AppTest) -> list:
    """The bundle's download buttons (the networks' download is always there)."""
    return [b for b in at.get("download_button") if b.proto.label != "Download the networks"]


def listed_files(at: AppTest) -> list[str]:
    return list(at.dataframe[0].value["file"])


def report_analyses(html: str) -> str:
    """The HTML report's settings row saying how the analyses were run."""
    cells = []
    parser = HTMLParser()
    parser.handle_data = cells.append
    parser.feed(html)
    return cells[cells.index("Analyses") + 1]


def test_without_a_run_it_says_what_to_do():
    at = app_at(PAGE)
    assert not at.exception
    assert "Train" in texts(at)
    assert not at.button and not at.get("download_button")


def test_the_page_renders_on_the_demo_run_before_building():
    entry = demo_run()
    at = app_at(PAGE, runs=(entry,))
    assert not at.exception
    assert entry.label in texts(at)
    assert at.button(key="export-build")
    assert not downloads(at)  # nothing is drawn until asked
    networks = at.get("download_button")[0]
    assert networks.proto.label == "Download the networks"
    assert at.radio(key="export-network-format").options == ["Keras (.h5)", "torch (.pt)",
                                                             "ONNX (.onnx)"]


@pytest.mark.slow
def test_building_offers_the_zip_and_the_report_and_follows_the_controls():
    entry = demo_run()
    at = small_build(app_at(PAGE, runs=(entry,)))
    assert not at.exception
    buttons = downloads(at)
    assert [b.proto.label for b in buttons] == ["ZIP of figures and tables", "HTML report"]
    files = listed_files(at)
    assert "figures/architecture.png" in files and "figures/architecture.svg" in files
    assert "tables/data_dropped_rows.csv" in files and "tables/sensitivity.xlsx" in files
    bundle = export_job(at).result()
    assert bundle.zip_name.startswith("bnapp_demo_cohort_")
    assert "20 bootstrap resamples" in report_analyses(bundle.html)

    at.number_input(key="export-boot").set_value(30).run()  # the built files no longer match
    assert not downloads(at)
    assert "build again" in texts(at)
    bundle = export_job(build(at)).result()
    assert "30 bootstrap resamples" in report_analyses(bundle.html)
    assert len(downloads(at)) == 2

    reloaded = app_at(PAGE, runs=(entry,))  # a new session: the finished build is found
    reloaded.number_input(key="export-permutations").set_value(2)
    reloaded.number_input(key="export-boot").set_value(30).run()
    assert not reloaded.exception and len(downloads(reloaded)) == 2
    assert reloaded.session_state["job_ids"] == [], "nothing was built again"


@pytest.mark.slow
def test_a_failed_build_says_why_and_can_be_retried(monkeypatch):
    entry = demo_run()
    at = app_at(PAGE, runs=(entry,))
    at.number_input(key="export-permutations").set_value(3)
    at.number_input(key="export-boot").set_value(40)

    def broken(*args, **kwargs):
        raise ValueError("no figure could be drawn")

    with monkeypatch.context() as patch:
        patch.setattr("bnapp.report.run_report.build_export", broken)
        at.button(key="export-build").click().run()
        assert export_job(at).wait(WAIT_SECONDS)
    at.run()
    assert not at.exception and not downloads(at)
    assert "no figure could be drawn" in texts(at)
    at = build(at)
    assert len(downloads(at)) == 2


@pytest.mark.slow
def test_a_run_of_another_data_set_is_exported_without_its_validation_report():
    entry = demo_run()
    at = AppTest.from_file(APP, default_timeout=120)
    other = data.load_dataset(data.DEMO_PATH.read_bytes()[:4000], name="other.csv")
    at.session_state["dataset"] = other
    at.session_state["runs"] = {entry.key: entry}
    at.session_state["active_run"] = entry.key
    at.run()
    at = small_build(at.switch_page(PAGE).run())
    assert not at.exception
    assert "This export lacks the data set's validation report" in texts(at)
    assert not any(f.startswith("tables/data_dropped") for f in listed_files(at))
    assert len(downloads(at)) == 2
