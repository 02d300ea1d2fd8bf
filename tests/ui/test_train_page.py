"""The Train page: architecture and live parameter count, protocol, background training, the runs
of this session and the cache (reopen, delete, clear with confirmation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager

from bnapp.engine.protocols import Protocol
from bnapp.intake import data
from bnapp.jobs import cache
from bnapp.jobs.scheduler import job_manager
from bnapp.report import style
from bnapp.ui import widgets
from tests.apptest import app_at, demo_run, texts
from tests.page_payload import chart_rows

PAGE = "pages/train.py"
WAIT_SECONDS = 600  # a bound for a hung job, not a speed requirement


def count_line(at) -> str:
    lines = [m.value for m in at.markdown if "parameters**" in m.value]
    assert len(lines) == 1
    return lines[0]


def test_renders_on_the_demo_and_says_what_to_do_first():
    at = app_at(PAGE)
    assert not at.exception
    assert "No run yet" in texts(at)
    assert "No cached runs yet" in texts(at)
    # the study's BN network on 5 inputs: input BN 10 + 10, Dense(5->6) 36, BN(6) 12 + 12, Out 7
    assert count_line(at) == ("**87 parameters** (65 trainable + 22 BN moving statistics) "
                              "for 5 inputs")
    assert len(at.get("vega_lite_chart")) == 1  # the architecture


def test_changing_the_architecture_changes_the_count_and_the_drawing():
    at = app_at(PAGE)
    before = at.get("vega_lite_chart")[0].proto.spec
    at.number_input(key="arch_layers").set_value(2).run()
    # a second Dense(6->6) 42 with BN(6) 12 + 12: 65 + 54 = 119 trainable, 22 + 12 = 34 moving
    assert "**153 parameters** (119 trainable + 34 BN moving statistics)" in count_line(at)
    assert at.get("vega_lite_chart")[0].proto.spec != before
    at.toggle(key="arch_same_width").set_value(False).run()
    at.number_input(key="arch_width_2").set_value(3).run()
    # Dense(6->3) 21 + BN(3) 6 + 6, output 4: 10 + 36 + 12 + 21 + 6 + 4 = 89 trainable
    assert "**117 parameters** (89 trainable + 28 BN moving statistics)" in count_line(at)
    at.toggle(key="arch_input_bn").set_value(False)
    at.toggle(key="arch_hidden_bn").set_value(False).run()
    assert "**61 parameters** (all trainable)" in count_line(at)  # 36 + 21 + 4


def test_the_study_presets():
    at = app_at(PAGE)
    at.number_input(key="arch_layers").set_value(3).run()
    at.button(key="preset_zscore").click().run()
    # DLNNnorm: Dense(5->6) 36, Dense(6->6) 42, output 7, all trainable
    assert count_line(at).startswith("**85 parameters** (all trainable)")
    assert at.radio(key="arch_input_mode").value == "zscore"
    at.button(key="preset_e2e").click().run()
    assert count_line(at).startswith("**87 parameters** (65 trainable + 22")
    assert at.radio(key="arch_input_mode").value == "raw"


def test_the_count_follows_the_inputs_chosen_on_the_data_page():
    at = app_at(PAGE)
    at.session_state["features"] = ["Upre", "Upos", "UF"]
    at.run()
    # input BN 6 + 6, Dense(3->6) 24, BN(6) 12 + 12, output 7
    assert count_line(at) == ("**67 parameters** (49 trainable + 18 BN moving statistics) "
                              "for 3 inputs")


def test_controls_keep_their_values_across_pages():
    at = app_at(PAGE)
    at.number_input(key="arch_layers").set_value(3)
    at.number_input(key="proto_epochs").set_value(55).run()
    at.switch_page("pages/data.py").run()
    at.switch_page(PAGE).run()
    assert at.number_input(key="arch_layers").value == 3
    assert at.number_input(key="proto_epochs").value == 55


def test_invalid_settings_are_explained_and_cannot_be_trained():
    at = app_at(PAGE)
    at.number_input(key="proto_lr").set_value(0.0).run()
    assert not at.exception
    assert "learning rate must be a positive number" in at.error[0].value
    assert at.button(key="train").disabled
    at.number_input(key="proto_lr").set_value(0.01)
    at.number_input(key="proto_folds").set_value(1).run()
    assert "folds must be at least 2" in at.error[0].value


def test_too_few_rows_for_the_folds_is_a_message(tmp_path):
    small = tmp_path / "small.csv"
    small.write_text("\n".join(data.DEMO_PATH.read_text().splitlines()[:13]) + "\n")
    at = app_at(PAGE)
    at.session_state["dataset"] = data.load_dataset(small)
    at.run()
    at.button(key="train").click().run()  # 12 rows, 10 folds
    assert not at.exception
    assert "too few" in at.error[0].value and r"small.csv\:" in at.error[0].value  # escaped
    assert "train_job" not in at.session_state


def train_small(at, *, folds: int = 3, epochs: int = 20, seed: int = 7):
    """Train with folds x epochs through the page (the seed a key no other test trains); wait for
    the job."""
    at.number_input(key="proto_folds").set_value(folds)
    at.number_input(key="proto_epochs").set_value(epochs)
    at.number_input(key="proto_seed").set_value(seed)
    at.button(key="train").click().run()
    assert not at.exception
    job = job_manager().get(at.session_state["train_job"])
    assert job is not None and job.wait(WAIT_SECONDS), job
    assert job.state == "done", job.error
    at.run()
    return job


@pytest.mark.slow
def test_training_opens_the_run_and_draws_its_curves_then_the_cache_reopens_and_deletes_it():
    at = app_at(PAGE)
    job = train_small(at)
    entry = at.session_state["runs"][job.key]
    assert at.session_state["active_run"] == job.key
    assert len(entry.run.folds) == 3 and entry.run.features == data.STUDY_INPUTS
    assert len(entry.run.folds[0].history["loss"]) == 20
    charts = at.get("vega_lite_chart")
    assert len(charts) == 3  # architecture, loss, input-BN gamma
    assert "Loss during training" in charts[1].proto.spec
    assert "No run yet" not in texts(at)

    # the cache lists it; a fresh session (another tab) reopens it
    (listed,) = at.selectbox(key="cached_pick").options
    assert listed.startswith(f"{entry.run.label} · demo_cohort.csv (200 rows)")
    other = app_at(PAGE)
    assert "No run yet" in texts(other)
    other.button(key="open_cached").click().run()
    assert not other.exception
    reopened = other.session_state["runs"][job.key]
    assert other.session_state["active_run"] == job.key
    assert len(reopened.run.folds) == 3
    assert len(other.get("vega_lite_chart")) == 3

    # deleting removes it from disk; the tab that has it open keeps it
    other.button(key="delete_cached").click().run()
    assert not other.exception
    assert cache.entries().empty and cache.load("run", job.key) is None
    assert "No cached runs yet" in texts(other)
    assert other.session_state["active_run"] == job.key


def test_the_curves_on_screen_are_light_and_their_downloads_detailed(monkeypatch):
    """Issue 13: a long run's curves reach the browser thinned to SCREEN_LINE_POINTS; their PNG
    and SVG downloads draw the detailed chart."""
    deferred = {}  # download key -> the callable streamlit keeps until the button is clicked

    def keep(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        deferred[file_name] = data_callable
        return add_deferred(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    add_deferred = MediaFileManager.add_deferred
    monkeypatch.setattr(MediaFileManager, "add_deferred", keep)
    drawn = []
    for render in ("chart_png", "chart_svg"):
        monkeypatch.setattr(widgets, render, lambda chart: drawn.append(chart) or b"")
    at = app_at(PAGE, runs=(demo_run(protocol=Protocol(folds=5, epochs=200)),))
    assert not at.exception
    screen = chart_rows(at)[1:]  # after the architecture: loss, γ
    assert len(screen) == 2 and max(screen) <= style.SCREEN_LINE_POINTS
    for name, rows in zip(("loss-curves", "input-gamma-curves"), screen, strict=True):
        for suffix in ("png", "svg"):
            deferred[f"{name}.{suffix}"]()
            detailed = drawn.pop()
            assert rows < sum(map(len, detailed.to_dict()["datasets"].values())) <= style.MAX_POINTS


def test_the_run_shown_can_be_switched():
    raw, zscore = demo_run("raw"), demo_run("zscore")
    at = app_at(PAGE, runs=(raw, zscore))
    assert at.selectbox(key="train_active").value == zscore.key
    at.selectbox(key="train_active").set_value(raw.key).run()
    assert not at.exception
    assert at.session_state["active_run"] == raw.key
    assert at.selectbox(key="train_active").value == raw.key


def test_clearing_the_cache_needs_a_confirmation():
    entry = demo_run()
    assert cache.save("run", entry.key, entry.run, label=entry.label, data_name=entry.data_name)
    at = app_at(PAGE)
    assert "patient-derived" in texts(at) and str(cache.cache_dir()) in texts(at).replace("\\", "")
    at.button(key="clear_cache").click().run()
    assert "Delete all 1 cached results" in texts(at)
    at.button(key="clear_cache_cancel").click().run()
    assert len(cache.entries()) == 1 and "Delete all" not in texts(at)
    at.button(key="clear_cache").click().run()
    at.button(key="clear_cache_confirm").click().run()
    assert not at.exception
    assert cache.entries().empty
    assert "No cached runs yet" in texts(at)


def test_validation_and_early_stopping_are_off_by_default_and_need_validation_rows():
    at = app_at(PAGE)
    assert at.number_input(key="proto_val").value == 0
    assert at.toggle(key="proto_early_stop").disabled and not at.toggle(key="proto_early_stop").value
    assert "proto_patience" not in {w.key for w in at.number_input}
    at.radio(key="proto_kind").set_value("study").run()
    assert at.number_input(key="proto_val_study").value == 20  # the study's inner 80/20 split
    assert not at.toggle(key="proto_early_stop").disabled
    assert "validation" in at.number_input(key="proto_val_study").help
    at.toggle(key="proto_early_stop").set_value(True).run()
    at.radio(key="proto_kind").set_value("kfold").run()  # back to 0% validation rows
    assert at.toggle(key="proto_early_stop").disabled and not at.toggle(key="proto_early_stop").value


@pytest.mark.slow
def test_training_with_early_stopping_keeps_each_models_best_epoch():
    at = app_at(PAGE)
    at.number_input(key="proto_val").set_value(25).run()
    at.toggle(key="proto_early_stop").set_value(True).run()
    assert at.number_input(key="proto_patience").value == 20
    at.number_input(key="proto_patience").set_value(2)
    at.number_input(key="proto_lr").set_value(0.05)
    at.number_input(key="proto_folds").set_value(3)
    at.number_input(key="proto_epochs").set_value(200)
    at.number_input(key="proto_seed").set_value(8).run()
    assert "3 models × at most 200 epochs" in texts(at)
    at.button(key="train").click().run()
    assert not at.exception
    job = job_manager().get(at.session_state["train_job"])
    assert job.wait(WAIT_SECONDS) and job.state == "done", job.error
    at.run()
    run = at.session_state["runs"][job.key].run
    assert run.protocol["val_fraction"] == 0.25 and run.protocol["patience"] == 2
    for fold in run.folds:
        val = fold.history["val_loss"]
        assert len(fold.val_rows) == math.ceil(0.25 * (200 - len(fold.test_rows)))
        assert fold.stopped_epoch == int(np.argmin(val))
        assert len(val) == min(200, fold.stopped_epoch + 3)
    assert any(len(f.history["loss"]) < 200 for f in run.folds), "early stopping must trigger"
    assert '"validation"' in at.get("vega_lite_chart")[1].proto.spec  # the validation curve


def test_the_bn_update_chosen_is_the_runs():
    at = app_at(PAGE)
    assert at.selectbox(key="proto_bn_decay").value == "keras3"
    at.selectbox(key="proto_bn_decay").set_value("keras2")
    job = train_small(at, folds=2, epochs=2, seed=8)
    assert at.session_state["runs"][job.key].run.protocol["bn_decay"] == "keras2"


def test_the_curves_say_only_what_exists_and_gamma_per_fold_is_on_demand():
    """Issue 27, item 8: no validation legend without validation rows, each model's test error
    shown, γ as a median and band until each fold is asked for."""
    at = app_at(PAGE, runs=(demo_run(),))
    assert not at.exception
    loss, gamma = (at.get("vega_lite_chart")[i].proto.spec for i in (1, 2))
    assert '"validation"' not in loss and '"test (held out)"' in loss
    assert "median over the folds" in gamma and "one line per fold" not in gamma
    at.toggle(key="gamma_per_fold").set_value(True).run()
    assert not at.exception
    assert "one line per fold" in at.get("vega_lite_chart")[2].proto.spec
    assert max(chart_rows(at)[1:]) <= style.SCREEN_LINE_POINTS


def test_the_result_is_said_beside_the_baselines():
    """The run's pooled errors beside every baseline's, and the verdict sentence of its paired
    comparison, above the curves."""
    from bnapp.analyses.baselines import baselines, paired_comparison, verdict
    from bnapp.report.page_tables import verdict_sentence

    entry = demo_run()
    at = app_at(PAGE, runs=(entry,))
    assert not at.exception
    v = verdict(paired_comparison(entry.run))
    assert verdict_sentence(v, "Ueq") in [m.value for m in at.markdown]
    shown = next(t.value for t in at.dataframe if "r2" in t.value.columns)
    want = baselines(entry.run).query("fold == 'pooled'")
    assert list(shown["method"]) == [style.METHOD_LABELS[m] for m in want["method"]]
    for col in ("rmse", "mae", "r2"):
        np.testing.assert_allclose(shown[col], want[col])


def test_an_identifier_preselects_grouped_k_fold_once_and_the_users_choice_stays():
    frame = data.demo_dataset().frame.copy()
    frame.insert(0, "patient_id", np.arange(len(frame)) // 4 + 1)
    at = app_at(PAGE)
    assert at.radio(key="proto_kind").value == "kfold"  # the demo has no identifier
    at.switch_page("pages/data.py").run()
    at.file_uploader(key="upload").set_value(
        ("ids.csv", frame.to_csv(index=False).encode(), "text/csv")).run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.radio(key="proto_kind").value == "group-kfold"
    assert at.selectbox(key="proto_group_by").value == "patient_id"
    at.radio(key="proto_kind").set_value("kfold").run()
    at.switch_page("pages/data.py").run()
    at.switch_page(PAGE).run()
    assert at.radio(key="proto_kind").value == "kfold"


def test_two_centres_are_advice_not_a_preselected_grouping(urea_csv):
    at = app_at("pages/data.py")
    at.file_uploader(key="upload").set_value(("Urea.csv", urea_csv.read_bytes(), "text/csv")).run()
    (advice,) = [w.value for w in at.warning if "identifier" in w.value]
    assert "**centro**" in advice and "leave one group out" in advice
    at.switch_page(PAGE).run()
    assert at.radio(key="proto_kind").value == "kfold"  # 2 groups cannot make 10 folds
