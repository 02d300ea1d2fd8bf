"""A β that is zero up to rounding is said in words (issue 27, item 9)."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp.analyses.stages import BETA_ZERO_TOLERANCE, beta_is_zero
from bnapp.engine.results import INPUT
from bnapp.report import bn_charts, page_tables
from tests.report.test_charts_builders import make_per_fold


@given(ratio=st.floats(1e-18, 1e-3), seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_beta_is_zero_up_to_a_tolerance_relative_to_gamma(ratio, seed):
    per_fold = make_per_fold(seed=seed)
    largest_gamma = per_fold["gamma"].abs().max()
    signs = np.where(np.arange(len(per_fold)) % 2, 1.0, -1.0)
    per_fold["beta"] = signs * ratio * largest_gamma * np.linspace(0.1, 1, len(per_fold))
    assert beta_is_zero(per_fold) == (ratio <= BETA_ZERO_TOLERANCE)


def test_without_bn_beta_is_not_called_zero():
    assert not beta_is_zero(make_per_fold().assign(beta=np.nan, gamma=np.nan))


def test_the_chart_drops_a_zero_beta_and_says_why():
    per_fold = make_per_fold()
    assert len(bn_charts.parameter_chart(per_fold).to_dict()["hconcat"]) == 3  # β ~1e-7: drawn
    zero = per_fold.assign(beta=per_fold["gamma"] * 4e-16)
    spec = bn_charts.parameter_chart(zero).to_dict()
    assert len(spec["hconcat"]) == 2
    words = json.dumps(spec["title"]["subtitle"], ensure_ascii=False)
    assert "β is 0 in every fold up to rounding" in words and "not drawn" in words
    assert "β (shift" not in json.dumps(spec["hconcat"], ensure_ascii=False)


def test_the_table_and_the_sentence_say_zero():
    per_fold = make_per_fold().assign(beta=3e-16)
    summary = per_fold.drop(columns="fold").groupby("unit", sort=False).agg(["mean", "std"])
    summary.columns = [f"{col}_{stat.replace('std', 'sd')}" for col, stat in summary.columns]
    summary = summary.reset_index()
    table = page_tables.parameter_table(summary, INPUT, beta_zero=True)
    assert (table["β (shift)"] == page_tables.BETA_ZERO).all()
    assert "e-16" not in table.to_csv()
    assert "3e-16" in page_tables.beta_zero_sentence(per_fold)
