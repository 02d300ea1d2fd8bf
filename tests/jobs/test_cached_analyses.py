"""Analyses on disk beside their run: keys, the no-pickle format, the dashboard's compute across
a cleared memo and a new process, corruption, clearing with the run, and the Export job."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from hypothesis import given, settings
from hypothesis import strategies as hst
from hypothesis.extra.pandas import column, data_frames

import bnapp
from bnapp.analyses import stages
from bnapp.cli import main
from bnapp.engine.model import ArchSpec
from bnapp.engine.results import FIRST_HIDDEN, INPUT
from bnapp.jobs import cache, payloads, scheduler
from bnapp.ui import widgets
from bnapp.ui.state import RunEntry
from tests.jobs.fakes import FakeProtocol, fake_train

FEATURES = ["Upre", "U120", "Upos", "PP", "UF"]
REPO = Path(__file__).resolve().parents[2]


def column_means(run, scale=1.0):
    """A module-level analysis (compute names it by module and name) that counts its calls."""
    CALLED.append(scale)
    return pd.DataFrame({"feature": run.features, "mean": run.X.mean(axis=0) * scale})


CALLED: list[float] = []


def fake_entry(seed: int = 0) -> RunEntry:
    """A (fake) run, stored in the cache as a trained one is."""
    protocol = FakeProtocol(seed=seed)
    X = np.arange(60.0).reshape(12, 5) ** 1.5
    data_key = cache.array_fingerprint(X, X[:, 2], FEATURES, "Ueq")
    run = fake_train(X, X[:, 2], ArchSpec(), protocol, features=FEATURES)
    key = cache.run_key(data_key, ArchSpec(), protocol, FEATURES, "Ueq")
    cache.save("run", key, run, data_name="fake.csv")
    return RunEntry(key, "fake", run, "fake.csv")


@pytest.fixture()
def entry() -> RunEntry:
    """A cached (fake) run, and an empty memo and call count."""
    st.cache_data.clear()
    CALLED.clear()
    return fake_entry()


def _analysis_files(run_key: str, suffix: str = cache.SIDECAR) -> list[Path]:
    return sorted((cache.cache_dir() / cache.ANALYSES / run_key).glob(f"*{suffix}"))


# ---------------------------------------------------------------------------------- keys, format

def test_analysis_key_covers_run_function_arguments_and_version(monkeypatch):
    run, name = "ab" * 32, "bnapp.stages.bn_parameters"
    base = cache.analysis_key(run, name, {"layer": INPUT, "ddof": 0})
    assert base == cache.analysis_key(run, name, {"ddof": 0, "layer": INPUT})
    others = [
        cache.analysis_key("cd" * 32, name, {"layer": INPUT, "ddof": 0}),
        cache.analysis_key(run, "bnapp.stages.training_curves", {"layer": INPUT, "ddof": 0}),
        cache.analysis_key(run, name, {"layer": FIRST_HIDDEN, "ddof": 0}),
        cache.analysis_key(run, name, {"layer": INPUT, "ddof": 1}),
        cache.analysis_key(run, name, {"layer": INPUT, "ddof": 0.0}),
        cache.analysis_key(run, name, {"layer": INPUT, "ddof": "0"}),
        cache.analysis_key(run, name, {"layer": INPUT, "sd": 0}),
    ]
    monkeypatch.setattr(cache, "__version__", "99.0")
    others.append(cache.analysis_key(run, name, {"layer": INPUT, "ddof": 0}))
    assert len(set(others)) == len(others) and base not in others


@pytest.mark.parametrize("args,kwargs", [
    ((), {}), ((INPUT,), {}), ((), {"layer": INPUT}), ((INPUT, 0), {}), ((), {"ddof": 0}),
    ((INPUT,), {"ddof": 0}), ((), {"ddof": 0, "layer": INPUT})])
def test_a_call_has_one_key_however_it_is_spelled(args, kwargs):
    run = "ab" * 32
    assert (cache.call_key(run, stages.bn_parameters, args, kwargs)
            == cache.call_key(run, stages.bn_parameters, (INPUT, 0)))
    assert (cache.call_key(run, stages.bn_parameters, args, kwargs)
            != cache.call_key(run, stages.bn_parameters, (FIRST_HIDDEN, 0)))


# parquet stores UTF-8: a lone surrogate cannot be stored (see test_an_unstorable_result_...)
storable_text = hst.text(alphabet=hst.characters(exclude_categories=("Cs",)))
frames = data_frames([column("layer", elements=storable_text, dtype=str),
                      column("fold", dtype=np.int64), column("gamma", dtype=float),
                      column("kept", dtype=bool)])


def _parts(result) -> list[pd.DataFrame]:
    if isinstance(result, dict):
        return list(result.values())
    return list(result) if isinstance(result, tuple) else [result]


@settings(max_examples=30, deadline=None)
@given(frames, frames)
@pytest.mark.slow
def test_frames_round_trip_exactly(first, second):
    if len(first):  # an empty categorical column reads back as object
        first = first.assign(layer=first["layer"].astype("category"))
    for result in (first, (first, second), {"summary": first, "per fold": second}):
        back = payloads.frames_from_bytes(payloads.frames_to_bytes(result))
        assert type(back) is type(result)
        assert not isinstance(result, dict) or list(back) == list(result)
        for got, want in zip(_parts(back), _parts(result), strict=True):
            pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize("result", [[pd.DataFrame()], {"x": 1}, {1: pd.DataFrame()}, 3.0])
def test_only_frames_are_stored(result):
    with pytest.raises(TypeError, match="only a DataFrame"):
        payloads.frames_to_bytes(result)


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 junk", b"not a zip at all"])
def test_a_payload_that_is_not_frames_is_refused(data):
    with pytest.raises(ValueError, match="not an analysis payload"):
        payloads.frames_from_bytes(data)


# ---------------------------------------------------------------------------------- compute

def test_compute_reads_from_disk_after_the_memo_is_cleared(entry):
    first = widgets.compute(entry, column_means, scale=2.0)
    assert CALLED == [2.0] and len(_analysis_files(entry.key)) == 1
    st.cache_data.clear()  # what an app restart does to the memo
    again = widgets.compute(entry, column_means, scale=2.0)
    assert CALLED == [2.0], "read from disk, not recomputed"
    pd.testing.assert_frame_equal(again, first)
    widgets.compute(entry, column_means, scale=3.0)
    assert CALLED == [2.0, 3.0] and len(_analysis_files(entry.key)) == 2
    assert cache.entries().set_index("key").at[entry.key, "n_analyses"] == 2


def test_a_real_analysis_is_identical_from_disk(entry):
    per_fold, summary = widgets.compute(entry, stages.bn_parameters, INPUT, ddof=0)
    st.cache_data.clear()
    # no run to compute from, and the call spelled another way: it must come from the disk
    back = cache.cached_analysis(entry.key, stages.bn_parameters, None, layer=INPUT)
    pd.testing.assert_frame_equal(back[0], per_fold)
    pd.testing.assert_frame_equal(back[1], summary)


def _refuse():
    raise AssertionError("recomputed although the analysis is cached")


_SCRIPT = textwrap.dedent(
    """
    import sys
    from bnapp.jobs import cache
    from tests.jobs.test_cached_analyses import column_means

    frame = cache.cached_analysis(sys.argv[1], column_means, None, scale=2.0)  # no run: no compute
    sys.stdout.write(frame.to_json())
    """
)


def test_an_analysis_is_read_from_disk_in_a_new_process(entry):
    first = widgets.compute(entry, column_means, scale=2.0)
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, entry.key], cwd=REPO, env=os.environ,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode() == first.to_json()


@pytest.mark.parametrize("damage", ["flip", "truncate", "sidecar"])
def test_a_corrupted_analysis_is_discarded_and_recomputed(entry, damage):
    first = widgets.compute(entry, column_means, scale=2.0)
    (meta,) = _analysis_files(entry.key)
    payload = meta.with_suffix(cache.PAYLOAD["analysis"])
    raw = payload.read_bytes()
    if damage == "flip":
        payload.write_bytes(raw[:100] + bytes([raw[100] ^ 0xFF]) + raw[101:])
    elif damage == "truncate":
        payload.write_bytes(raw[: len(raw) // 2])
    else:
        meta.write_text("{not json")
    st.cache_data.clear()
    with pytest.warns(cache.CacheWarning, match="corrupted"):
        again = widgets.compute(entry, column_means, scale=2.0)
    assert CALLED == [2.0, 2.0]
    pd.testing.assert_frame_equal(again, first)
    assert len(_analysis_files(entry.key)) == 1, "stored again"


def test_an_unstorable_result_is_returned_without_being_cached(entry):
    def odd_names(run):
        return pd.DataFrame({"feature": pd.Series(["Upre\udcff"], dtype=object), "mean": [1.0]})

    with pytest.warns(cache.CacheWarning, match="not cached"):
        frame = widgets.compute(entry, odd_names)
    assert frame["feature"].item() == "Upre\udcff" and not _analysis_files(entry.key)
    with pytest.warns(cache.CacheWarning, match="not cached"):
        assert widgets.compute(entry, lambda run: {"not": "frames"}) == {"not": "frames"}


def test_removing_a_run_removes_its_analyses_and_none_are_written_back(entry):
    widgets.compute(entry, column_means, scale=2.0)
    assert cache.remove(entry.key)
    assert not (cache.cache_dir() / cache.ANALYSES / entry.key).exists()
    st.cache_data.clear()
    widgets.compute(entry, column_means, scale=2.0)  # a tab still shows the deleted run
    assert CALLED == [2.0, 2.0] and not _analysis_files(entry.key)


@pytest.mark.parametrize("how", ["corrupted", "stored again"])
def test_a_run_discarded_or_stored_again_loses_its_analyses(entry, how):
    """Analyses describe the stored run: when it is discarded as corrupted, or replaced (a
    retrain after a corrupted entry), the old ones must never be served for the new run."""
    widgets.compute(entry, column_means, scale=2.0)
    assert _analysis_files(entry.key)
    if how == "corrupted":
        payload = cache.cache_dir() / f"{entry.key}{cache.PAYLOAD['run']}"
        payload.write_bytes(payload.read_bytes()[:50])
        with pytest.warns(cache.CacheWarning, match="corrupted"):
            assert cache.load("run", entry.key) is None
    else:
        cache.save("run", entry.key, entry.run, data_name="fake.csv")
    assert not _analysis_files(entry.key)


def test_cli_clear_and_list_cover_analyses(entry, capsys):
    widgets.compute(entry, column_means, scale=2.0)
    assert main(["cache", "list"]) == 0
    assert "n_analyses" in capsys.readouterr().out
    assert main(["cache", "clear", "--key", entry.key[:10]]) == 0
    assert not (cache.cache_dir() / cache.ANALYSES / entry.key).exists()
    entry = fake_entry()
    widgets.compute(entry, column_means, scale=3.0)
    assert main(["cache", "clear", "--all"]) == 0
    assert not (cache.cache_dir() / cache.ANALYSES).exists() and cache.entries().empty


@pytest.mark.slow
def test_the_train_pages_delete_and_clear_all_buttons_remove_analyses(entry):
    from tests.apptest import app_at

    other = fake_entry(seed=1)
    for run in (entry, other):
        widgets.compute(run, column_means, scale=2.0)
    at = app_at("pages/train.py")
    at.selectbox(key="cached_pick").set_value(entry.key)
    at.button(key="delete_cached").click().run()
    assert not at.exception and cache.entries().key.tolist() == [other.key]
    assert not _analysis_files(entry.key) and len(_analysis_files(other.key)) == 1
    at.button(key="clear_cache").click().run()
    at.button(key="clear_cache_confirm").click().run()
    assert not at.exception and cache.entries().empty
    assert not (cache.cache_dir() / cache.ANALYSES).exists()


def test_a_new_version_does_not_read_old_analyses(entry, monkeypatch):
    widgets.compute(entry, column_means, scale=2.0)
    st.cache_data.clear()
    monkeypatch.setattr(bnapp, "__version__", "99.0")
    monkeypatch.setattr(cache, "__version__", "99.0")
    widgets.compute(entry, column_means, scale=2.0)
    assert CALLED == [2.0, 2.0]


# ---------------------------------------------------------------------------------- export job

@pytest.mark.slow
def test_the_export_job_builds_once_and_reuses_cached_tables(monkeypatch):
    from bnapp.report import run_report
    from tests.apptest import demo_run

    entry = demo_run()
    cache.save("run", entry.key, entry.run, data_name=entry.data_name)  # into this test's cache
    options = run_report.analysis_options(n_permutations=2, n_boot=20)
    manager = scheduler.JobManager()
    kw = dict(run_key=entry.key, data_name=entry.data_name, dataset=None, options=options)
    job = manager.submit_export(entry.run, **kw)
    assert manager.submit_export(entry.run, **kw) is job, "one build for two requests"
    bundle = job.result(600)
    assert job.state == "done" and job.message == "done" and bundle.zip_bytes
    assert cache.entries().set_index("key").at[entry.key, "n_analyses"] == 1

    # run_tables' first step refuses: its tables must come from the disk
    monkeypatch.setattr(run_report, "importance_tables", lambda *a, **k: _refuse())
    again = scheduler.JobManager().submit_export(entry.run, **kw).result(600)  # after a restart
    assert run_report.zip_contents(again.zip_bytes)["file"].tolist() == \
        run_report.zip_contents(bundle.zip_bytes)["file"].tolist()

