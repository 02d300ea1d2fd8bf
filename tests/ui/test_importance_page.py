"""The Importance page and the what-if section of the Predict page, through AppTest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bnapp.analyses import concordance, explain, verdict
from bnapp.analyses.layer_tables import layer_rows
from bnapp.engine.results import INPUT, Layer
from bnapp.report.markup import escape_md
from tests.apptest import app_at, demo_run, texts

IMPORTANCE = "pages/importance.py"


@pytest.mark.slow
def test_importance_page_states_the_answer_per_definition_with_its_interval():
    entry = demo_run()
    at = app_at(IMPORTANCE, runs=(entry,))
    assert not at.exception
    expected = concordance.importance_report(entry.run, layers=[INPUT])
    conc = layer_rows(expected["concordance"], INPUT)
    page = texts(at)
    verdicts = verdict.verdict(expected["concordance"], expected["importance"], INPUT)
    assert len(verdicts) == 6 and "cohorts like this one" in page
    for sentence in verdicts["sentence"]:  # the verdict's own words, one per definition
        assert escape_md(sentence) in page
    table = at.dataframe[0].value
    np.testing.assert_allclose(table["estimate"], conc["estimate"].round(3))
    assert len(at.get("vega_lite_chart")) + len(at.get("arrow_vega_lite_chart")) >= 3
    assert len(at.dataframe) == 1, "the per-row tables are sent only when opened"
    at.session_state["imp-shapley"] = True
    at.run()
    assert not at.exception
    shapley = at.dataframe[1].value
    assert len(shapley) == len(expected["shapley"])
    np.testing.assert_allclose(shapley.select_dtypes("number"),
                               expected["shapley"].select_dtypes("number"))


@pytest.mark.slow
def test_importance_page_explains_the_hidden_nodes():
    entry = demo_run()
    at = app_at(IMPORTANCE, runs=(entry,))
    at.radio(key="imp-layer").set_value(Layer.hidden(0)).run()
    assert not at.exception
    expected = concordance.importance_report(entry.run, layers=[Layer.hidden(0)])
    np.testing.assert_allclose(at.dataframe[0].value["estimate"],
                               expected["concordance"]["estimate"].round(3))
    at.session_state["imp-per-fold"] = True
    at.run()
    assert set(at.dataframe[1].value["unit"]) == set(entry.run.unit_names(Layer.hidden(0)))


def test_what_if_follows_the_sliders():
    entry = demo_run()
    run = entry.run
    at = app_at("pages/predict.py", runs=(entry,))
    assert not at.exception
    sliders = sorted((s for s in at.slider if s.key.startswith("whatif-")),
                     key=lambda s: int(s.key.rsplit("-", 1)[1]))  # columns list them out of order
    assert len(sliders) == len(run.features)
    session = np.array([s.value for s in sliders], dtype=float)
    metric = at.metric[-1]
    assert float(metric.value) == pytest.approx(run.ensemble_predictions(session[None]).mean(),
                                                abs=0.005)
    sliders[2].set_value(float(np.percentile(run.X[:, 2], 90))).run()
    assert not at.exception
    session[2] = at.slider(key=sliders[2].key).value
    view = explain.what_if(run, session)
    assert float(at.metric[-1].value) == pytest.approx(view.prediction, abs=0.005)
    assert float(at.metric[-1].value) != pytest.approx(float(metric.value), abs=1e-6)


@pytest.mark.slow
def test_importance_charts_mark_chance_and_say_where_curves_extrapolate():
    """Issue 27, item 12: top-unit agreement beside the chance level of the run's 5 inputs;
    the ICE figure says whether its curves leave the training rows."""
    entry = demo_run()
    at = app_at(IMPORTANCE, runs=(entry,))
    specs = [json.dumps(json.loads(c.proto.spec), ensure_ascii=False)
             for c in [*at.get("vega_lite_chart"), *at.get("arrow_vega_lite_chart")]]
    (heat,) = [s for s in specs if "does |γ| rank units" in s]
    assert "chance (20%, one of 5 units picked at random)" in heat
    (ice,) = [s for s in specs if "ICE and partial dependence" in s]
    _, pdp = explain.ice_pdp(entry.run)
    assert ("extrapolate" in ice) == (not pdp["in_training_range"].all())
    sensitivity = app_at("pages/sensitivity.py", runs=(entry,))
    assert "smoothed trend" in texts(sensitivity) and "LOWESS" not in texts(sensitivity)
