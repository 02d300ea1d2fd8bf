"""The HTML report one sends to colleagues (issue 27, item 10): the model card rendered, the
settings in words, captions as sentences, the group column named, a page that fits 1,400 px."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bnapp.engine.protocols import Protocol, group_hash, grouped
from bnapp.report import export, model_card, network_charts, run_report
from tests.report.test_charts_builders import make_curves

PATIENTS = np.repeat(["p1", "p2", "p3", "p4", "p5", "p6"], 4)


def grouped_protocol(kind: str = "group-kfold") -> dict:
    return grouped(Protocol(folds=3, seed=4), kind, "patient_id", PATIENTS).to_dict()


def test_the_protocol_in_words():
    words = model_card.protocol_words(Protocol(folds=5, epochs=80, seed=2).to_dict())
    assert words.startswith("5-fold cross-validation (seed 2); 80 epochs")
    assert "no validation rows" in words and "{" not in words
    study = model_card.protocol_words(Protocol(kind="study", val_fraction=0.2,
                                               patience=7).to_dict())
    assert "10 random 80/20 splits" in study and "20% of each training set" in study
    assert "after 7 epochs without improvement" in study
    imported = {"kind": "study", "folds": 10, "epochs": 200, "batch_size": 32, "lr": 0.01,
                "val_fraction": 0.2}  # an imported checkpoint's: no seed to name
    assert "seed" not in model_card.protocol_words(imported)
    assert "keeping each patient\\_id together" in model_card.protocol_words(grouped_protocol())
    assert "one model per patient\\_id" in model_card.protocol_words(
        grouped_protocol("leave-one-group-out"))


def test_the_group_column_is_named():
    assert model_card.grouping_words(grouped_protocol()).startswith("column patient\\_id:")
    assert model_card.grouping_words(Protocol().to_dict()).startswith("none:")


def test_settings_are_readable_rows_without_dicts_or_hashes():
    protocol = grouped_protocol()
    settings = {"bnapp_version": "1.2.3",
                "data": {"name": "sessions.csv", "fingerprint": "f" * 64, "rows_used": 24,
                         "units": "mmol/L"},
                "features": ["Upre", "PP"], "target": "Ueq",
                "architecture": {"hidden": [6]}, "architecture_label": "BN+FC6+BN+Out1",
                "parameters": {"trainable": 65, "non_trainable": 22, "total": 87},
                "protocol": protocol, "analysis": {"n_permutations": 2, "n_boot": 20, "seed": 0},
                "run_key": "a" * 64, "cli_command": "python -m bnapp analyze --folds 3",
                "cli_command_differs_in": ["protocol lr = 0.05 (the command uses 0.01)"]}
    table = run_report.settings_table(settings)
    rows = dict(zip(table["setting"], table["value"], strict=True))
    text = " ".join(rows.values())
    assert "{" not in text and "a" * 64 not in text and "f" * 64 not in text
    assert group_hash(PATIENTS) not in text
    assert rows["Sessions kept together by"].startswith("column patient_id:")
    assert rows["Data set"] == "sessions.csv (24 rows used; urea mmol/L in the file)"
    assert rows["Inputs"] == "Upre (mg/dL), PP (kg)"
    assert rows["What the command does differently"] == settings["cli_command_differs_in"][0]
    page = export.html_report("r", summary={}, figures={}, tables={}, settings=table)
    assert "<pre>" not in page and "patient_id" in page


def test_captions_are_the_charts_title_and_subtitle_as_sentences():
    loss, _ = make_curves(epochs=20, folds=2)
    chart = network_charts.loss_curves(loss)
    assert export.caption(chart) == ("Loss during training. Mean squared error per epoch, one "
                                     "line per fold (log scale).")
    page = export.html_report("r", summary={}, figures={"loss_curves": chart}, tables={},
                              settings=pd.DataFrame(columns=["setting", "value"]))
    assert f"<figcaption>{export.caption(chart)}</figcaption>" in page
    assert 'alt="loss_curves"' in page


def test_the_card_is_rendered_with_its_headings_under_the_reports():
    card = "# Model card\n\n## Data\n\n| a | b |\n|---|---|\n| <b>x</b> | 1 |\n"
    rendered = export.markdown_html(card)
    assert rendered.startswith("<h2>Model card</h2>\n<h3>Data</h3>")
    assert '<div class="scroll"><table>' in rendered and "</table></div>" in rendered
    assert "&lt;b&gt;x&lt;/b&gt;" in rendered and "<b>" not in rendered  # raw HTML stays text


@pytest.mark.browser
def test_a_wide_table_scrolls_in_its_box_with_its_key_column_in_view():
    from tests.browser import chromium, require_browser

    require_browser()
    wide = pd.DataFrame({"method": ["Network", "Rate equation"],
                         **{f"a long column name {k}": [1.5, 2.5] for k in range(40)}})
    page_html = export.html_report("r", summary={"Data set": "x"}, figures={},
                                   tables={"wide": wide},
                                   settings=pd.DataFrame({"setting": ["s"], "value": ["v"]}),
                                   model_card=model_card.NOT_A_DEVICE)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_content(page_html, wait_until="load")
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400
        box = page.locator(".scroll").first
        assert box.evaluate("b => b.scrollWidth > b.clientWidth"), "the table is wider: it scrolls"
        key = page.locator("td", has_text="Rate equation")
        before = key.bounding_box()["x"]
        box.evaluate("b => { b.scrollLeft = 2000; }")
        assert box.evaluate("b => b.scrollLeft") > 0
        assert key.bounding_box()["x"] == pytest.approx(before, abs=1)  # the key column stays
