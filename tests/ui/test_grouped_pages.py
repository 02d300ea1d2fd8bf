"""Grouped validation in the dashboard: the Train page's grouped protocols and grouping column,
the Data page's warnings (an ID column with no grouping, too few rows), and the per-unit section
of the Baselines page."""

from __future__ import annotations

import numpy as np
import pytest

from bnapp.intake import data
from bnapp.jobs.scheduler import job_manager
from tests.apptest import app_at, texts

TRAIN, DATA, BASELINES = "pages/train.py", "pages/data.py", "pages/baselines.py"
WAIT_SECONDS = 600  # a bound for a hung job, not a speed requirement


def _with(dataset, page: str):
    at = app_at(page)
    at.session_state["dataset"] = dataset
    at.run()
    return at


@pytest.mark.slow
def test_a_unit_column_warns_on_the_data_page_until_a_grouped_protocol_is_chosen(urea_csv):
    at = _with(data.load_dataset(urea_csv), DATA)
    assert not at.exception
    (warning,) = [w.value for w in at.warning if "identifier" in w.value]
    assert "**centro**" in warning and "2 values, up to 61 sessions each" in warning
    at.switch_page(TRAIN).run()
    at.radio(key="proto_kind").set_value("group-kfold").run()
    assert at.session_state["group_by"] == "centro"
    at.switch_page(DATA).run()
    assert "identifier" not in texts(at)
    at.switch_page(TRAIN).run()
    at.radio(key="proto_kind").set_value("kfold").run()  # back to independent rows
    at.switch_page(DATA).run()
    assert "identifier" in texts(at)


def test_the_demo_cohort_has_no_id_warning_and_no_grouping_column():
    at = app_at(DATA)
    assert "identifier" not in texts(at) and "too few" not in texts(at)
    at.switch_page(TRAIN).run()
    at.radio(key="proto_kind").set_value("leave-one-group-out").run()
    assert not at.exception
    assert "No column of this data set can group rows" in texts(at)
    assert at.button(key="train").disabled


@pytest.mark.parametrize(("n", "alert", "message"), [
    (2, "error", "too few to train anything"),
    (15, "warning", "too few for the default 10-fold cross-validation, which needs at least 20"),
])
def test_too_few_rows_are_named_on_the_data_page(tmp_path, n, alert, message):
    small = tmp_path / "small.csv"
    small.write_text("\n".join(data.DEMO_PATH.read_text().splitlines()[:n + 1]) + "\n")
    at = _with(data.load_dataset(small), DATA)
    assert not at.exception
    assert any(message in a.value.replace("\\", "") for a in getattr(at, alert))  # unescaped


@pytest.mark.slow
def test_leave_one_centre_out_from_the_train_page_to_the_baselines_page(urea_csv):
    ds = data.load_dataset(urea_csv)
    at = _with(ds, TRAIN)
    at.radio(key="proto_kind").set_value("leave-one-group-out").run()
    assert at.selectbox(key="proto_group_by").options == ["centro"]
    assert at.number_input(key="proto_folds").disabled
    assert "2 models × 200 epochs" in texts(at)
    at.number_input(key="proto_epochs").set_value(3)
    at.number_input(key="proto_seed").set_value(11).run()
    at.button(key="train").click().run()
    assert not at.exception
    job = job_manager().get(at.session_state["train_job"])
    assert job is not None and job.wait(WAIT_SECONDS), job
    assert job.state == "done", job.error
    at.run()
    run = at.session_state["runs"][job.key].run
    centres = ds.frame["centro"].to_numpy()
    assert [set(centres[f.test_rows]) for f in run.folds] == [{0.0}, {1.0}]
    assert run.protocol["group_by"] == "centro"
    at.switch_page(BASELINES).run()
    assert not at.exception
    assert "Each held-out centro, trained on the others" in texts(at)
    (units,) = [d.value for d in at.dataframe if "held_out" in d.value.columns]
    assert sorted(units["held_out"].unique()) == ["0", "1"]
    net = units[units["method"] == "network"].set_index("held_out")["n"]
    assert net.to_dict() == {"0": int(np.sum(centres == 0)), "1": int(np.sum(centres == 1))}
    assert any("spearman" in d.value.columns for d in at.dataframe)


def test_more_grouped_folds_than_groups_is_explained(urea_csv):
    at = _with(data.load_dataset(urea_csv), TRAIN)
    at.radio(key="proto_kind").set_value("group-kfold").run()  # 10 folds, 2 centres
    assert not at.exception
    assert "'centro' has 2 groups, too few for 10 grouped folds" in at.error[0].value.replace(
        "\\", "")
    assert at.button(key="train").disabled
