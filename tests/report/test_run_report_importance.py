"""The export's importance tables and figures: the Importance page's, without recomputing the
ablations the sensitivity tables already hold."""

from __future__ import annotations

import pandas as pd
import pytest

from bnapp.analyses import concordance
from bnapp.report import run_charts, run_report
from tests.apptest import demo_run

OPTIONS = {"n_permutations": 2, "n_boot": 50, "seed": 0}


@pytest.mark.slow
def test_run_tables_hold_the_importance_report_and_its_figures():
    run = demo_run().run
    tables = run_report.run_tables(run, **OPTIONS)
    alone = concordance.importance_report(run, **OPTIONS)
    for name in ("importance", "concordance"):
        pd.testing.assert_frame_equal(tables[name], alone[name])
    assert {"shapley_values", "ice", "pdp"} <= set(tables)
    figures = run_charts.importance_figures(run, tables)
    assert {"concordance_input", "concordance_hidden1", "importance_input",
            "importance_hidden1", "ice_pdp"} <= set(figures)
    assert set(figures) <= set(run_charts.run_figures(run, tables))
