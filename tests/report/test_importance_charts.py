"""The importance figures and the plain-words answer per definition."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnapp.analyses import concordance, explain
from bnapp.engine.model import ArchSpec
from bnapp.report import importance_charts as ic
from tests.analyses.test_metrics import make_run


def _values(chart) -> list[dict]:
    spec = chart.to_dict()
    return [row for data in spec.get("datasets", {}).values() for row in data]


def test_every_figure_builds_and_stays_small():
    run = make_run(ArchSpec(), folds=3)
    report = concordance.importance_report(run, n_boot=100)
    conc = report["concordance"][report["concordance"]["layer"] == "input"]
    heat = _values(ic.concordance_heatmap(conc, "Input BN", n_units=4))
    assert len(heat) == len(conc) + 1  # and the chance level
    bars = _values(ic.importance_bars(report["importance"], "Input BN"))
    assert {row["panel"] for row in bars} == {ic.GAMMA, *ic.DEFINITION_TITLES.values()}
    ice, pdp = explain.ice_pdp(run)
    drawn = _values(ic.ice_pdp_chart(ice, pdp, target=run.target))
    assert len(drawn) <= 3000 + len(pdp) + 2 * pdp["unit"].nunique()  # and the shaded ends


def test_waterfall_runs_from_the_base_value_to_the_prediction():
    run = make_run(ArchSpec(), folds=3)
    view = explain.what_if(run, run.X[2])
    steps = pd.DataFrame(_values(ic.shapley_waterfall(view.shapley, view.base_value)))
    assert steps["end"].iloc[0] == view.base_value
    assert steps["end"].iloc[-1] == np.float64(view.base_value + view.shapley["contribution"].sum())
    assert abs(steps["end"].iloc[-1] - view.prediction) < 1e-9
    assert len(_values(ic.session_ice_chart(view.ice, view.shapley))) == len(view.ice) + 4


def test_answers_say_yes_no_or_not_established_with_the_interval():
    conc = pd.DataFrame({
        "definition": ["shapley", "ablation_zero", "ablation_mean"],
        "statistic": "spearman", "estimate": [0.8, -0.6, 0.1],
        "ci_low": [0.6, -0.9, -0.3], "ci_high": [0.95, -0.2, 0.5], "n_folds": 10})
    lines = ic.concordance_answers(conc)
    assert lines[0].startswith("- **mean |Shapley value|**: yes, clearly") and "0.60 to 0.95" in lines[0]
    assert "no, the order is reversed" in lines[1]
    assert "not established" in lines[2] and "-0.30 to 0.50" in lines[2]
