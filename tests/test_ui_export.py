"""The Export page: what to do without a run, and one build giving the ZIP and the HTML report."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from streamlit.testing.v1 import AppTest

from bnapp import data
from tests.apptest import APP, app_at, demo_run, texts

PAGE = "pages/export.py"


def small_build(at: AppTest) -> AppTest:
    """Few shuffles and resamples: the analyses take a moment; drawing the figures is the rest."""
    at.number_input(key="export-permutations").set_value(2)
    at.number_input(key="export-boot").set_value(20)
    return at.button(key="export-build").click().run()


def listed_files(at: AppTest) -> list[str]:
    return list(at.dataframe[0].value["file"])


def report_settings(html: str) -> dict:
    class Pre(HTMLParser):
        text = ""
        inside = False

        def handle_starttag(self, tag, attrs):
            self.inside = tag == "pre"

        def handle_data(self, d):
            self.text += d if self.inside else ""

    parser = Pre()
    parser.feed(html)
    return json.loads(parser.text)


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
    assert not at.get("download_button")  # nothing is drawn until asked


def test_building_offers_the_zip_and_the_report_and_follows_the_controls():
    entry = demo_run()
    at = small_build(app_at(PAGE, runs=(entry,)))
    assert not at.exception
    buttons = at.get("download_button")
    assert [b.proto.label for b in buttons] == ["ZIP of figures and tables", "HTML report"]
    files = listed_files(at)
    assert "figures/architecture.png" in files and "figures/architecture.svg" in files
    assert "tables/data_dropped_rows.csv" in files and "tables/sensitivity.xlsx" in files
    bundle = at.session_state["export_bundle"][1]
    assert bundle.zip_name.startswith("bnapp_demo_cohort_")
    assert report_settings(bundle.html)["analysis"]["n_boot"] == 20

    at.number_input(key="export-boot").set_value(30).run()  # the built files no longer match
    assert not at.get("download_button")
    assert "build again" in texts(at)
    at.button(key="export-build").click().run()
    bundle = at.session_state["export_bundle"][1]
    assert report_settings(bundle.html)["analysis"]["n_boot"] == 30
    assert len(at.get("download_button")) == 2


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
    assert "validation report" in texts(at) and "not included" in texts(at)
    assert not any(f.startswith("tables/data_dropped") for f in listed_files(at))
    assert len(at.get("download_button")) == 2
