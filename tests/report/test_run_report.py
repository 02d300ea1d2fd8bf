"""The Export page's files: the HTML report and the ZIP of one run, reproducible and inert.

A data set whose file name, column names and cells are hostile (HTML, Markdown links, spreadsheet
formulas) is trained with those columns as inputs, so the names reach every table and figure;
the exports must show them only as text.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
import shlex
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp.analyses.settings import SETTINGS
from bnapp.cli import build_parser
from bnapp.cli.options import protocol_from_args, spec_from_args
from bnapp.engine.model import ACTIVATIONS, INPUT_MODES, OUTPUT_ACTIVATIONS, ArchSpec
from bnapp.engine.protocols import Protocol
from bnapp.engine.results import INPUT, Layer
from bnapp.intake import data
from bnapp.jobs import cache
from bnapp.jobs.cached import cached_train
from bnapp.report import export, page_tables, run_charts, run_report
from tests.apptest import demo_run

pytestmark = pytest.mark.slow  # a module fixture trains and exports a run

REPO = Path(__file__).resolve().parents[2]
XSS = "<img src=x onerror=alert(1)>"
MD = "[x](javascript:alert(1))"
FORMULA = '=HYPERLINK("http://evil.example","click")'
HOSTILE_NAME = "<script>alert(1)</script>[y](javascript:alert(2)).csv"
TINY = Protocol(folds=3, epochs=20, seed=1)
OPTIONS = {"n_permutations": 2, "n_boot": 20}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def risky(s: str) -> bool:
    """Spreadsheet formula starts (the exports' promise, written independently)."""
    return s[:1] in ("=", "+", "-", "@", "\t", "\r") or s.lstrip()[:1] in ("=", "+", "-", "@")


class Page(HTMLParser):
    """Every start tag with its attributes, all text, and the text of each <pre> and
    <figcaption>, of an HTML page."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.within: dict[str, list[str]] = {"pre": [], "figcaption": []}
        self._open: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in self.within:
            self._open = tag
            self.within[tag].append("")

    def handle_endtag(self, tag):
        if tag == self._open:
            self._open = None

    def handle_data(self, d):
        self.text.append(d)
        if self._open:
            self.within[self._open][-1] += d


def settings_of(bundle) -> dict:
    """The settings as the ZIP keeps them for a machine: one JSON value per setting."""
    table = pd.read_csv(io.BytesIO(members(bundle)["tables/settings.csv"]), encoding="utf-8-sig",
                        keep_default_na=False)
    return {row.setting: json.loads(row.value) for row in table.itertuples()}


def hostile_dataset() -> data.Dataset:
    frame = pd.read_csv(data.DEMO_PATH)
    rng = np.random.default_rng(0)
    for name in (XSS, MD, FORMULA):
        frame[name] = rng.normal(size=len(frame))
    frame["note"] = ["=1+1", "@SUM(A1)", "+x", "-x"] * (len(frame) // 4)
    frame = frame.astype({"Upre": object, "UF": object})
    frame.loc[3, "Upre"] = "=cmd|' /C calc'!A0"  # dropped rows whose values are formulas
    frame.loc[7, "UF"] = XSS
    return data.load_dataset(frame.to_csv(index=False).encode(), name=HOSTILE_NAME)


def build(entry_run, key, name, ds, progress=None):
    options = run_report.analysis_options(**OPTIONS)
    tables = run_report.run_tables(entry_run, **options)
    figures = run_charts.run_figures(entry_run, tables)
    bundle = run_report.build_export(entry_run, tables, figures, run_key=key, data_name=name,
                                 dataset=ds, options=options, progress=progress)
    return figures, bundle


@pytest.fixture(scope="module")
def demo_progress() -> list[tuple[float, str]]:
    return []


@pytest.fixture(scope="module")
def demo(demo_progress):
    entry = demo_run()
    figures, bundle = build(entry.run, entry.key, entry.data_name, data.demo_dataset(),
                            progress=lambda fraction, message: demo_progress.append(
                                (fraction, message)))
    return entry, figures, bundle


@pytest.fixture(scope="module")
def hostile():
    ds = hostile_dataset()
    features = [*data.STUDY_INPUTS, XSS, MD, FORMULA]
    run = cached_train(ds.X(features), ds.y(), ArchSpec.study_e2e(), TINY, features=features,
                       target=data.STUDY_TARGET, data_key=ds.fingerprint(),
                       row_ids=ds.row_numbers, data_name=ds.name)
    key = cache.run_key(ds.fingerprint(), run.spec, TINY, features, data.STUDY_TARGET)
    figures, bundle = build(run, key, ds.name, ds)
    return ds, run, bundle


# ----------------------------------------------------------------------------- the HTML report

def test_report_shows_every_figure_and_the_main_tables(demo):
    entry, figures, bundle = demo
    page = Page(bundle.html)
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert sorted(image["alt"] for image in images) == sorted(figures)  # every figure, once
    # captions are the charts' titles and subtitles, as sentences
    assert page.within["figcaption"] == [export.caption(chart) for chart in figures.values()]
    for words in page.within["figcaption"]:
        assert words.endswith(".") and "_" not in words, words
    for heading in ("Architecture and parameter counts", "study table 2", "paired over folds"):
        assert heading in bundle.html
    assert "87" in page.text  # the study network's total parameter count


def test_progress_names_every_figure_and_ends_done(demo, demo_progress):
    figures = demo[1]
    fractions = [f for f, _ in demo_progress]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    messages = " ".join(m for _, m in demo_progress)
    for name in figures:  # drawn once, for the ZIP and the report alike
        assert messages.count(f": {name}") == 1, name


def test_report_summarises_the_data(demo):
    entry, _, bundle = demo
    ds = data.demo_dataset()
    text = "".join(Page(bundle.html).text)
    for label, value in (("Data set", ds.name), ("Rows read", ds.n_read),
                         ("Rows usable", ds.n_usable), ("Rows used by the run", len(entry.run.y))):
        assert f"{label}{value}" in text
    assert "Upre (mg/dL)" in text and "PP (kg)" in text and "UF (L)" in text


def test_settings_parse_back_to_the_run(demo):
    entry, _, bundle = demo
    settings_ = settings_of(bundle)
    assert ArchSpec.from_dict(settings_["architecture"]) == entry.run.spec
    assert Protocol.from_dict(settings_["protocol"]).to_dict() == entry.run.protocol
    assert settings_["features"] == list(data.STUDY_INPUTS)
    assert settings_["target"] == data.STUDY_TARGET
    assert settings_["data"]["fingerprint"] == data.demo_dataset().fingerprint()
    assert settings_["parameters"] == {"trainable": 65, "non_trainable": 22, "total": 87}
    assert settings_["analysis"] == {**OPTIONS, "seed": SETTINGS.seed}  # not the training seed
    assert settings_["run_key"] == entry.key
    assert re.fullmatch(r"\d+\.\d+\.\d+", settings_["bnapp_version"])


def test_the_report_reads_as_a_page_not_as_code(demo):
    """Issue 27, item 10: the model card rendered, settings as readable rows, no hash."""
    entry, _, bundle = demo
    page = Page(bundle.html)
    text = "".join(page.text).split("Generated by bnapp on", 1)[1]  # the body, not the style
    for markdown in ("##", "|---", "**"):
        assert markdown not in text
    assert page.within["pre"] == [] and "{" not in text and "run_key" not in text
    assert entry.key not in bundle.html and data.demo_dataset().fingerprint() not in bundle.html
    assert "Model card: BN+FC6+BN+Out1" in text and "Performance beside the clinical" in text
    assert "3-fold cross-validation (seed 0); 30 epochs" in text
    assert "Sessions kept together bynone: rows were split at random" in text
    settings_ = settings_of(bundle)
    assert f"Command that runs it again{settings_['cli_command']}" in text


def test_the_cli_command_trains_the_same_run(demo):
    """Parsed by the real CLI parser, the command names this very run's cache key."""
    entry, _, bundle = demo
    settings_ = settings_of(bundle)
    argv = shlex.split(settings_["cli_command"])
    assert argv[:4] == ["python", "-m", "bnapp", "analyze"]
    args = build_parser().parse_args(argv[3:])
    spec = spec_from_args(args)
    protocol = Protocol(kind="kfold", folds=args.folds, epochs=args.epochs, seed=args.seed)
    ds = data.load_dataset(REPO / args.data)
    assert cache.run_key(ds.fingerprint(), spec, protocol, data.STUDY_INPUTS,
                         data.STUDY_TARGET) == entry.key
    assert (args.permutations, args.n_boot) == (OPTIONS["n_permutations"], OPTIONS["n_boot"])
    assert settings_["cli_command_differs_in"] == []


names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                min_size=1, max_size=30)


@settings(max_examples=40, deadline=None)
@given(hidden=st.lists(st.integers(1, 16), min_size=1, max_size=3),
       activation=st.sampled_from(ACTIVATIONS), output=st.sampled_from(OUTPUT_ACTIVATIONS),
       input_bn=st.booleans(), hidden_bn=st.booleans(), mode=st.sampled_from(INPUT_MODES),
       folds=st.integers(2, 20), epochs=st.integers(1, 500), seed=st.integers(0, 2**31),
       name=names, bn_decay=st.sampled_from(["keras3", "keras2"]))
def test_cli_command_round_trips_any_spec_and_file_name(hidden, activation, output, input_bn,
                                                        hidden_bn, mode, folds, epochs, seed,
                                                        name, bn_decay):
    spec = ArchSpec(hidden=tuple(hidden), activation=activation, output_activation=output,
                    input_bn=input_bn, hidden_bn=hidden_bn, input_mode=mode)
    protocol = Protocol(folds=folds, epochs=epochs, seed=seed, bn_decay=bn_decay).to_dict()
    run = replace(demo_run().run, spec=spec, protocol=protocol)
    command, differences = run_report.cli_command(run, name, {"seed": seed, "n_permutations": 3,
                                                          "n_boot": 100})
    args = build_parser().parse_args(shlex.split(command)[3:])
    assert spec_from_args(args) == spec
    assert (args.folds, args.epochs, args.seed) == (folds, epochs, seed)
    assert protocol_from_args(args).bn_decay == bn_decay
    assert args.data == Path(name)  # a leading "./" keeps a name like "-x" from being an option
    assert differences == []


def test_cli_command_names_what_it_cannot_reproduce(demo):
    entry = demo[0]
    run = replace(entry.run, features=["Upre", "Upos"],
                  protocol=Protocol.study(seed=3).to_dict())
    _, differences = run_report.cli_command(run, "x.csv", run_report.analysis_options())
    text = " | ".join(differences)
    assert "protocol kind = 'study'" in text and "val_fraction = 0.2" in text
    assert "inputs Upre, Upos" in text
    mmol = replace(data.demo_dataset(), units="mmol/L")
    settings_ = run_report.reproduction_settings(entry.run, run_key=entry.key, data_name="x.csv",
                                             dataset=mmol)
    assert settings_["cli_command_differs_in"] == ["urea read as urea mmol/L (the command reads "
                                                   "urea mg/dL)"]
    assert settings_["data"]["units"] == "mmol/L"


def test_a_data_set_the_run_was_not_trained_on_is_left_out(demo, hostile):
    entry = demo[0]
    assert cache.trained_on(entry.key, entry.run, data.demo_dataset())
    assert not cache.trained_on(entry.key, entry.run, hostile[0])
    assert not cache.trained_on(entry.key, entry.run, None)
    summary = run_report.data_summary(entry.run, entry.data_name, None)
    assert "Rows read" not in summary and "not loaded" in summary["Validation report"]


# ------------------------------------------------------------------------------------ the ZIP

def members(bundle) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle.zip_bytes)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_zip_holds_every_figure_and_table_in_both_formats(demo):
    entry, figures, bundle = demo
    files = members(bundle)
    for stem in figures:
        assert files[f"figures/{stem}.png"].startswith(PNG_MAGIC)
        assert ET.fromstring(files[f"figures/{stem}.svg"]).tag.endswith("svg")
    tables = {"bn_parameters", "sensitivity", "association", "baselines", "data_dropped_rows",
              "data_dropped_by_reason", "data_summary", "settings", "architecture"}
    for stem in tables:
        assert f"tables/{stem}.csv" in files and f"tables/{stem}.xlsx" in files
    listing = run_report.zip_contents(bundle.zip_bytes)
    assert sorted(listing["file"]) == sorted(files)
    assert set(listing["content"]) == {"figure (PNG image)", "figure (SVG vector graphics)",
                                       "table (CSV)", "table (Excel workbook)",
                                       "model card (Markdown)"}
    assert bundle.has_validation_report


def test_zip_tables_match_the_analyses(demo):
    entry, _, bundle = demo
    expected = run_report.run_tables(entry.run, **run_report.analysis_options(**OPTIONS))
    got = pd.read_csv(io.BytesIO(members(bundle)["tables/bn_parameters.csv"]), encoding="utf-8-sig")
    pd.testing.assert_frame_equal(got, expected["bn_parameters"], check_dtype=False)


def test_every_bn_layer_has_its_parameter_figure_named_by_its_layer(demo):
    entry, figures, _ = demo
    spec = entry.run.spec
    titles = {stem: figures[f"parameters_{stem}"].to_dict()["title"]["text"]
              for stem in ("input", "hidden1")}
    assert titles["input"].startswith(page_tables.layer_title(spec, INPUT))
    assert titles["hidden1"].startswith(page_tables.layer_title(spec, Layer.hidden(0)))
    assert titles["input"] != titles["hidden1"]
    assert f"parameters_hidden{len(spec.hidden) + 1}" not in figures


def test_file_names_carry_the_data_set_name():
    zip_name, html_name = run_report.export_names("Urea.csv", "abcdef0123456789")
    assert zip_name == "bnapp_Urea_abcdef01.zip"
    assert html_name == "bnapp_Urea_abcdef01_report.html"
    for name in run_report.export_names(HOSTILE_NAME, "0" * 64):
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name) and "javascript" in name


# ------------------------------------------------------------------------ hostile text stays text

def test_hostile_names_reach_the_run(hostile):
    ds, run, bundle = hostile
    assert {XSS, MD, FORMULA} <= set(run.features)
    assert len(ds.dropped) >= 2 and bundle.has_validation_report


def svg_is_inert(svg: str) -> None:
    root = ET.fromstring(svg)
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        assert tag not in ("script", "foreignObject", "image", "a", "iframe")
        for attr, value in element.attrib.items():
            name = attr.rsplit("}", 1)[-1].lower()
            assert not name.startswith("on")  # no event handlers
            if name in ("href", "src"):  # text attributes such as aria-label may hold anything
                assert "javascript:" not in value.lower()


def test_html_report_shows_hostile_text_only_as_text(hostile):
    ds, run, bundle = hostile
    page = Page(bundle.html)
    for tag, attrs in page.tags:
        assert tag not in ("script", "iframe", "object", "embed", "a", "link", "base")
        assert not any(name.startswith("on") for name in attrs)
        assert not any("javascript:" in (v or "").lower() for v in attrs.values())
        if tag == "img":  # the figures: inert SVG images, nothing else
            assert set(attrs) == {"alt", "src"}
            assert attrs["src"].startswith("data:image/svg+xml;base64,")
            svg = base64.b64decode(attrs["src"].split(",", 1)[1]).decode()
            svg_is_inert(svg)
    text = "".join(page.text)
    for hostile_text in (XSS, MD, FORMULA, HOSTILE_NAME):
        assert hostile_text in text  # shown, as text
    assert html.escape(XSS) in bundle.html and XSS not in bundle.html
    settings_ = settings_of(bundle)
    assert settings_["features"][-3:] == [XSS, MD, FORMULA]
    assert any("inputs" in d for d in settings_["cli_command_differs_in"])


def test_zip_tables_are_neutralized_against_formulas(hostile):
    _, run, bundle = hostile
    files = members(bundle)
    seen: set[str] = set()
    for name, content in files.items():
        if name.endswith(".xlsx"):
            book = openpyxl.load_workbook(io.BytesIO(content))
            for sheet in book.worksheets:
                for row in sheet.iter_rows():
                    for cell in row:
                        assert cell.data_type != "f", (name, cell.coordinate)
                        if isinstance(cell.value, str):
                            assert not risky(cell.value), (name, cell.coordinate, cell.value)
                            seen.add(cell.value)
        elif name.endswith(".csv"):
            for row in csv.reader(io.StringIO(content.decode("utf-8-sig"))):
                for cell in row:
                    try:
                        float(cell)
                    except ValueError:
                        assert not risky(cell), (name, cell)
                        seen.add(cell)
        elif name.endswith(".svg"):
            svg_is_inert(content.decode())
    assert "'" + FORMULA in seen and XSS in seen  # the names are there, as inert text
    assert "'=cmd|' /C calc'!A0" in seen  # the dropped row's value, from the validation report
