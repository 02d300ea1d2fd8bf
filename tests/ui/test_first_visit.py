"""A run's first-visit analyses, computed ahead by its training worker (bnapp.jobs.page_analyses):
after them, no page computes anything when it first shows the run."""

from __future__ import annotations

import pytest

from bnapp.analyses import cohort_intervals
from bnapp.engine.protocols import Protocol
from bnapp.jobs import cache, cached, page_analyses, processes, training_worker
from bnapp.ui import widgets
from tests.apptest import app_at, demo_run, texts

PAGES = ("train", "stages", "parameters", "sensitivity", "importance", "baselines", "agreement",
         "predict")


@pytest.mark.slow
def test_after_prepare_no_page_computes_on_its_first_visit(monkeypatch):
    entry = demo_run(protocol=Protocol(folds=3, epochs=30, seed=5))  # no other test shows it
    assert cache.save("run", entry.key, entry.run)
    calls = page_analyses.first_visit(entry.run)
    keys = {cache.call_key(entry.key, call.fn, call.args, call.kwargs) for call in calls}
    assert page_analyses.prepare(entry.run, entry.key) == len(keys)
    assert page_analyses.prepare(entry.run, entry.key) == 0, "the second time finds them stored"
    widgets._memo.clear()  # the pages' in-memory memo: each first visit reads the disk
    computed = []
    monkeypatch.setattr(cache, "save", lambda kind, key, result, **meta: computed.append(meta))
    at = app_at(None, runs=(entry,))
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, page
    assert computed == [], "pages computed what page_analyses.FIRST_VISIT should have prepared"


def test_prepare_waits_for_the_run_to_be_stored():
    entry = demo_run()
    cache.remove(entry.key)  # demo_run stores it when it trains it
    assert not cache.is_stored(entry.key)
    assert page_analyses.prepare(entry.run, entry.key, wait=0.2) == 0


@pytest.mark.prepares_pages
def test_a_run_is_marked_while_a_worker_prepares_its_pages(monkeypatch):
    sent = {}
    monkeypatch.setattr(processes, "in_background",
                        lambda fn, *args, then=None, gate=None: sent.update(fn=fn, args=args,
                                                                 then=then))
    entry = demo_run()
    cached.prepare_in_background(entry.run, entry.key)
    assert sent["fn"] is training_worker.prepare_pages and sent["args"][1] == entry.key
    assert cached.being_prepared(entry.key)
    sent["then"]()  # the worker call ended (done or failed)
    assert not cached.being_prepared(entry.key)


@pytest.mark.parametrize("page", ["sensitivity", "importance"])
def test_a_page_visited_while_its_cohort_intervals_are_prepared_shows_the_folds(page,
                                                                               monkeypatch):
    """Right after training, Sensitivity and Importance do not retrain the cohort replicates
    the worker is busy with: they show the folds' intervals, say so, and wait for the rest."""
    entry = demo_run(protocol=Protocol(folds=3, epochs=30, seed=7))  # nothing stored for it yet
    monkeypatch.setattr(cached, "being_prepared", lambda key: key == entry.key)
    monkeypatch.setattr(cohort_intervals, "replicate_runs",
                        lambda *a, **k: pytest.fail("the page retrained the replicates"))
    at = app_at(f"pages/{page}.py", runs=(entry,))
    assert not at.exception
    assert any("being computed in the background" in c.value for c in at.caption)
    intervals = " ".join(texts(at).split())
    assert "this data set's folds" in intervals


def test_the_analyses_that_retrain_replicates_are_prepared_last():
    """Agreement's first visit must not wait seconds behind the cohort replicates."""
    calls = page_analyses.first_visit(demo_run().run)
    names = [call.fn.__name__ for call in calls]
    assert names[-2:] == ["ablation_report", "importance_report"], names
    first = names.index("ablation_report")
    assert {"agreement", "share_within", "calibration", "held_out_coverage"} <= set(names[:first])
