"""A run's first-visit analyses, computed ahead by its training worker (bnapp.jobs.first_visit):
after them, no page computes anything when it first shows the run."""

from __future__ import annotations

from bnapp.engine.train import Protocol
from bnapp.jobs import cache, first_visit
from bnapp.ui import widgets
from tests.apptest import app_at, demo_run

PAGES = ("train", "stages", "parameters", "sensitivity", "importance", "baselines", "agreement",
         "predict")


def test_after_prepare_no_page_computes_on_its_first_visit(monkeypatch):
    entry = demo_run(protocol=Protocol(folds=3, epochs=30, seed=5))  # no other test shows it
    assert cache.save_run(entry.key, entry.run)
    assert first_visit.prepare(entry.run, entry.key) == len(first_visit.analyses(entry.run))
    assert first_visit.prepare(entry.run, entry.key) == 0, "the second time finds them stored"
    widgets._memo.clear()  # the pages' in-memory memo: each first visit reads the disk
    computed = []
    monkeypatch.setattr(cache, "save_analysis",
                        lambda run_key, key, result, *, function: computed.append(function))
    at = app_at(None, runs=(entry,))
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, page
    assert computed == [], "pages computed what first_visit.analyses should have prepared"


def test_prepare_waits_for_the_run_to_be_stored():
    entry = demo_run()
    cache.remove(entry.key)  # demo_run stores it when it trains it
    assert not cache.is_stored(entry.key)
    assert first_visit.prepare(entry.run, entry.key, wait=0.2) == 0
