"""The importance figures and the plain-words answer per definition."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnapp.analyses import concordance, explain, verdict
from bnapp.engine.model import ArchSpec
from bnapp.report import importance_charts as ic
from tests.analyses.test_metrics import make_run


def _values(chart) -> list[dict]:
    spec = chart.to_dict()
    return [row for data in spec.get("datasets", {}).values() for row in data]


def test_every_figure_builds_and_stays_small():
    run = make_run(ArchSpec(), folds=3)
    report = concordance.importance_report(run, n_boot=100, n_replicates=0)
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


def test_answers_are_the_verdicts_sentences_with_the_top_unit_and_the_sign_note():
    conc = pd.DataFrame({
        "definition": ["shapley", "ablation_zero"] * 2,
        "statistic": ["spearman"] * 2 + ["top_unit_agreement"] * 2,
        "estimate": [0.8, -0.6, 0.7, 0.1], "ci_low": [0.6, -0.9, 0.4, 0.0],
        "ci_high": [0.95, -0.2, 0.9, 0.3], "n_folds": 10})
    verdicts = pd.DataFrame({
        "definition": ["shapley", "ablation_zero"],
        "sentence": [verdict.label("shapley") + ": yes, clearly (ρ 0.80).",
                     verdict.label("ablation_zero") + ": inverse (ρ -0.60)."],
        "sign_note": ["", "Pooled and within disagree."]})
    lines = ic.concordance_answers(verdicts, conc)
    assert len(lines) == 2
    assert "yes, clearly" in lines[0] and "70% of folds (0.40 to 0.90)" in lines[0]
    assert "inverse" in lines[1] and lines[1].endswith("Pooled and within disagree.")
    assert "\\|Shapley value\\|" in lines[0], "the sentence is escaped for Markdown"
