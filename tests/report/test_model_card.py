"""The model card: its sections and numbers, and its place in the export ZIP and HTML report."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from html import escape as html_escape

import pandas as pd
import pytest

from bnapp.intake import data
from bnapp.report import model_card, run_report
from bnapp.report.markup import unescape_md
from tests.apptest import demo_run

OPTIONS = {"n_permutations": 2, "n_boot": 20}


@pytest.fixture(scope="module")
def demo():
    entry = demo_run()
    tables = run_report.run_tables(entry.run, **OPTIONS, interval=0.8)
    return entry, tables


@pytest.mark.slow
def test_card_states_use_data_validation_and_limits(demo):
    entry, tables = demo
    ds = data.demo_dataset()
    card = unescape_md(model_card.model_card(entry.run, tables, data_name=ds.name, dataset=ds))
    for heading in ("## Intended use", "## Data", "## Architecture and validation",
                    "## Performance beside the clinical formulas",
                    "## Agreement with the measured value (Bland–Altman)",
                    "## Prediction intervals and their coverage",
                    "## Subgroups and dialysis units", "## Known limits"):
        assert heading in card
    assert "research tool, not a medical device" in card
    assert f"Rows read: {ds.n_read}; usable: {ds.n_usable}; dropped: {ds.n_dropped}" in card
    assert "65 trainable parameters and 22 BN moving statistics (87 in all)" in card
    assert "arterial access" in card and "from one country" in card
    # the numbers are the tables'
    pooled = tables["baselines"].query("fold == 'pooled' and method == 'rate_equation'").iloc[0]
    spread = tables["error_intervals"].query("method == 'rate_equation' and statistic == 'rmse'")
    low, high = spread[["ci_low", "ci_high"]].iloc[0]
    assert (f"| Rate equation (Daugirdas–Schneditz) | {pooled['n']} | {pooled['rmse']:.3g} "
            f"[{low:.3g}, {high:.3g}] |") in card
    assert "cohorts like this one" in card and "optimistic: folds share" not in card
    assert "## Does |γ| tell which input matters?" in card
    for sentence in tables["verdict"]["sentence"]:
        assert sentence in card  # the pages' own sentences
    net = tables["agreement"].query("method == 'network' and quantity == 'Ueq'").iloc[0]
    assert f"{net['loa_high']:.3g} [{net['loa_high_ci_low']:.3g}, {net['loa_high_ci_high']:.3g}]" in card
    assert "Coverage of 80% prediction intervals" in card
    # both constructions, each labelled, with its own pooled figure
    coverage = tables["coverage"]
    for interval, label in (("cv_plus", "CV+ (as Predict gives), nested"),
                            ("split_conformal", "held-out split-conformal")):
        cov = coverage[(coverage["interval"] == interval) & (coverage["method"] == "network")
                       & (coverage["fold"] == "pooled")].iloc[0]
        assert f"| {label} | Network | {cov['n']} | {cov['coverage']:.1%} |" in card
    assert "exact (Carkeet 2015)" in card
    assert "Date range: no date column" in card


@pytest.mark.slow
def test_card_gives_the_date_range_and_per_unit_results_when_the_file_has_them():
    entry = demo_run()
    ds = data.demo_dataset()
    n = ds.n_usable
    frame = ds.frame.assign(fecha=pd.date_range("2021-03-01", periods=n, freq="D").strftime(
        "%d/%m/%Y"), centro=[1.0, 2.0] * (n // 2) + [1.0] * (n % 2))
    ds = dataclasses.replace(ds, frame=frame, extra_columns=[*ds.extra_columns, "fecha", "centro"])
    tables = run_report.run_tables(entry.run, **OPTIONS)
    card = unescape_md(model_card.model_card(entry.run, tables, data_name=ds.name, dataset=ds))
    last = pd.Timestamp("2021-03-01") + pd.Timedelta(days=n - 1)
    assert f"Date range: 2021-03-01 to {last:%Y-%m-%d} (column fecha)" in card
    groups = model_card.subgroup_table(entry.run, ds)
    assert set(groups["centro"]) == {"1", "2"}
    assert groups.groupby("method")["test rows"].sum().eq(n).all()
    assert "| centro | method | test rows | RMSE |" in card
    # without the run's own data there is no unit to split by
    assert model_card.subgroup_table(entry.run, None) is None


@pytest.mark.slow
def test_export_zip_and_html_report_carry_the_card(demo):
    entry, tables = demo
    ds = data.demo_dataset()
    bundle = run_report.build_export(entry.run, tables, {}, run_key=entry.key,
                                     data_name=ds.name, dataset=ds)
    with zipfile.ZipFile(io.BytesIO(bundle.zip_bytes)) as archive:
        card = archive.read("model_card.md").decode()
        names = set(archive.namelist())
    assert card.startswith("# Model card:")
    for stem in ("agreement", "calibration", "coverage", "predictions"):
        assert f"tables/{stem}.csv" in names
    # rendered: the card's headings under the report's title, its tables as tables
    assert "<h2>Model card: " in bundle.html and "<h3>Intended use</h3>" in bundle.html
    assert "<strong>bnapp is a research tool, not a medical device" in bundle.html
    assert "<h3>Agreement with the measured value (Bland–Altman)</h3>" in bundle.html
    assert '<div class="scroll"><table>\n<thead>\n<tr>\n<th>method</th>' in bundle.html
    assert "|---|" not in bundle.html and "\n## " not in bundle.html


@pytest.mark.slow
def test_card_and_html_report_open_with_the_verdict_sentence(demo):
    """The card's first paragraph and the HTML report's first line after its title are the
    sentence the Baselines page shows, from the run's paired comparison."""
    from bnapp.analyses.baselines import verdict
    from bnapp.report.page_tables import verdict_sentence

    entry, tables = demo
    v = verdict(tables["paired_comparison"])
    want = verdict_sentence(v, entry.run.target)
    assert v.word in want
    card = model_card.model_card(entry.run, tables, data_name="demo.csv")
    assert card.split("\n\n")[1] == want
    html = run_report.report_html(entry.run, tables, {}, run_key=entry.key, data_name="demo.csv")
    after_title = html.split("</h1>", 1)[1].lstrip()
    headline = html_escape(unescape_md(want), quote=True)
    assert after_title.startswith(f'<p class="headline">{headline}</p>')


@pytest.mark.slow
def test_card_gives_the_share_within_the_acceptable_difference(demo):
    entry, tables = demo
    card = unescape_md(model_card.model_card(entry.run, tables, data_name="demo.csv"))
    share = tables["share_within"]
    for row in share.itertuples():
        assert f"{row.within} of {row.n}: {row.share:.0%} [{row.ci_low:.0%}, " in card
    assert "| eKt/V |" in card and "eKtV" not in card
