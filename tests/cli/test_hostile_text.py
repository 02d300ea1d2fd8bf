"""Issue 28, reproduced end to end: group labels that are formulas and markup, through
`analyze`, reach groups.csv and groups_gamma_rank.csv as inert text and model_card.md as
escaped text."""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from bnapp.cli import main
from tests.report.test_charts_export import plain_number, risky

LABELS = {0: '\x01=HYPERLINK("http://evil","x")', 1: "<img src=x onerror=alert(1)>[a](http://e)"}


@pytest.mark.slow
def test_analyze_writes_hostile_group_labels_as_text(urea_csv, tmp_path):
    frame = pd.read_csv(urea_csv)
    frame["centro"] = frame["centro"].map(LABELS)
    data = tmp_path / "hostile.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "out"
    assert main(["analyze", "--data", str(data), "--out", str(out), "--epochs", "3",
                 "--protocol", "leave-one-group-out", "--group-by", "centro",
                 "--permutations", "1", "--n-boot", "20"]) == 0
    for name in ("groups.csv", "groups_gamma_rank.csv"):
        with (out / name).open(encoding="utf-8-sig", newline="") as handle:
            cells = [cell for row in csv.reader(handle) for cell in row]
        assert not [c for c in cells if risky(c) and not plain_number(c)], name
        assert not any("\x01" in c for c in cells)
    assert any(c.startswith("'=HYPERLINK") for c in cells), "the label is kept, as text"
    card = (out / "model_card.md").read_text(encoding="utf-8")
    assert "HYPERLINK" in card and "onerror" in card, "the labels are in the card"
    tokens = [t for block in MarkdownIt("commonmark", {"html": True}).enable("table").parse(card)
              for t in [block, *(block.children or [])]]
    assert not {t.type for t in tokens} & {"html_inline", "html_block", "link_open", "image"}
