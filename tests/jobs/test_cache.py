"""The content-addressed cache: keys, hits and misses, corruption, permissions, persistence."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import bnapp
from bnapp.engine.model import ArchSpec
from bnapp.engine.results import run_from_bytes, run_to_bytes
from bnapp.jobs import cache, cached
from tests.jobs.fakes import Calls, FakeProtocol, fake_grid, fake_train, same_run

FEATURES = ["Upre", "U120", "Upos", "PP", "UF"]


@pytest.fixture()
def fake_engine(monkeypatch, tmp_path):
    calls = Calls.at(tmp_path / "calls")
    monkeypatch.setattr(cached, "train_run", partial(fake_train, calls=calls))
    monkeypatch.setattr(cached, "run_grid", partial(fake_grid, calls=calls))
    return calls


@pytest.fixture()
def data():
    rng = np.random.default_rng(7)
    X = rng.normal(100, 20, size=(30, 5))
    return X, X[:, 2] * 0.9


def _train(X, y, spec=None, protocol=None, **kw):
    return cached.cached_train(X, y, spec or ArchSpec(), protocol or FakeProtocol(),
                               features=FEATURES,
                             target="Ueq", data_key=cache.array_fingerprint(X, y, FEATURES, "Ueq"), **kw)


def _entry_paths(kind="run"):
    (meta,) = cache.cache_dir().glob("*.json")
    return meta.with_suffix(cache.PAYLOAD[kind]), meta


# ---------------------------------------------------------------------------------- keys


def test_key_changes_with_every_input_that_decides_the_result():
    base = dict(data_fingerprint="abc", spec=ArchSpec(), protocol=FakeProtocol(),
                features=FEATURES, target="Ueq")
    key = cache.run_key(**base)
    assert key == cache.run_key(**base) and len(key) == 64
    changed = [
        {"data_fingerprint": "abd"},
        {"spec": ArchSpec(hidden=(6, 6))},
        {"spec": ArchSpec(input_mode="zscore")},
        {"protocol": FakeProtocol(seed=1)},
        {"protocol": FakeProtocol(epochs=5)},
        {"features": FEATURES[::-1]},
        {"target": "Upos"},
    ]
    keys = {cache.run_key(**{**base, **c}) for c in changed}
    assert len(keys) == len(changed) and key not in keys


def test_key_includes_the_library_version(monkeypatch):
    args = ("abc", ArchSpec(), FakeProtocol(), FEATURES, "Ueq")
    before = cache.run_key(*args)
    monkeypatch.setattr(bnapp, "__version__", "99.0")
    monkeypatch.setattr(cache, "__version__", "99.0")
    assert cache.run_key(*args) != before


def test_one_changed_cell_changes_the_fingerprint(data):
    X, y = data
    X2 = X.copy()
    X2[17, 3] += 1e-9
    assert cache.array_fingerprint(X, y, FEATURES, "Ueq") != cache.array_fingerprint(X2, y, FEATURES, "Ueq")
    assert cache.array_fingerprint(X, y, FEATURES, "Ueq") != cache.array_fingerprint(X, y, FEATURES[::-1], "Ueq")


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 12), st.just(5)),
              elements=st.floats(-1e6, 1e6, allow_subnormal=False)),
       st.data())
def test_any_single_cell_change_changes_the_fingerprint(X, draw):
    y = X[:, 0] * 2
    i = draw.draw(st.integers(0, X.shape[0] - 1))
    j = draw.draw(st.integers(0, X.shape[1] - 1))
    new = draw.draw(st.floats(-1e6, 1e6, allow_subnormal=False).filter(lambda v: v != X[i, j]))
    X2 = X.copy()
    X2[i, j] = new
    assert cache.array_fingerprint(X2, y, FEATURES, "Ueq") != cache.array_fingerprint(X, y, FEATURES, "Ueq")
    assert cache.array_fingerprint(X.copy(), y.copy(), FEATURES, "Ueq") == cache.array_fingerprint(X, y, FEATURES, "Ueq")


# ---------------------------------------------------------------------------------- hits and misses


def test_miss_then_hit_returns_identical_result(fake_engine, data):
    X, y = data
    first = _train(X, y)
    assert fake_engine.n == 1
    seen = []
    second = _train(X, y, progress=lambda f, m: seen.append((f, m)))
    assert fake_engine.n == 1, "the second call must come from the cache"
    assert seen == [(1.0, "loaded from the cache")]
    assert same_run(second, first)


def test_one_cell_change_in_the_data_recomputes(fake_engine, data):
    X, y = data
    _train(X, y)
    X2 = X.copy()
    X2[0, 0] = X2[0, 0] + 0.5
    changed = _train(X2, y)
    assert fake_engine.n == 2
    np.testing.assert_array_equal(changed.X, X2)
    _train(X, y)
    assert fake_engine.n == 2, "the original data is still cached"


def test_a_key_that_lies_about_its_data_is_not_trusted(fake_engine, data):
    X, y = data
    key = cache.array_fingerprint(X, y, FEATURES, "Ueq")
    cached.cached_train(X, y, ArchSpec(), FakeProtocol(), features=FEATURES, target="Ueq",
                        data_key=key)
    with pytest.warns(cache.CacheWarning, match="other data"):
        run = cached.cached_train(X + 1, y, ArchSpec(), FakeProtocol(), features=FEATURES,
                                target="Ueq", data_key=key)
    assert fake_engine.n == 2
    np.testing.assert_array_equal(run.X, X + 1)


@pytest.mark.parametrize("damage", ["truncate", "flip", "sidecar"])
def test_corrupted_entry_is_discarded_and_recomputed(fake_engine, data, damage):
    X, y = data
    good = run_to_bytes(_train(X, y))
    payload, meta = _entry_paths()
    if damage == "truncate":
        payload.write_bytes(payload.read_bytes()[: payload.stat().st_size // 2])
    elif damage == "flip":
        raw = bytearray(payload.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        payload.write_bytes(bytes(raw))
    else:
        meta.write_text("{not json")
    with pytest.warns(cache.CacheWarning, match="corrupted"):
        again = _train(X, y)
    assert fake_engine.n == 2
    assert same_run(again, good)
    assert _train(X, y) is not None and fake_engine.n == 2, "the recomputed entry is stored again"


def test_entry_with_valid_checksum_but_bad_format_is_recomputed(fake_engine, data):
    X, y = data
    _train(X, y)
    payload, meta = _entry_paths()
    junk = b"PK\x03\x04 not an npz"
    payload.write_bytes(junk)
    sidecar = json.loads(meta.read_text())
    sidecar["sha256"] = __import__("hashlib").sha256(junk).hexdigest()
    meta.write_text(json.dumps(sidecar))
    with pytest.warns(cache.CacheWarning, match="corrupted"):
        _train(X, y)
    assert fake_engine.n == 2


def test_a_crash_mid_write_leaves_no_valid_entry(fake_engine, data, monkeypatch):
    X, y = data

    def crash(src, dst):
        raise KeyboardInterrupt("power cut")

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(os, "replace", crash)
        _train(X, y)
    assert cache.entries().empty
    assert not list(cache.cache_dir().glob(".*.tmp")), "temp files are cleaned up"
    _train(X, y)
    assert fake_engine.n == 2


# ---------------------------------------------------------------------------------- the directory


def test_cache_dir_is_created_owner_only(monkeypatch, tmp_path):
    target = tmp_path / "deep" / "bnapp"
    monkeypatch.setenv("BNAPP_CACHE_DIR", str(target))
    assert cache.cache_dir() == target
    assert stat.S_IMODE(target.stat().st_mode) == 0o700


def test_default_cache_dir_is_under_home(monkeypatch, tmp_path):
    monkeypatch.delenv("BNAPP_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / ".cache" / "bnapp"
    assert stat.S_IMODE((tmp_path / ".cache" / "bnapp").stat().st_mode) == 0o700


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS])
def test_full_or_read_only_disk_still_returns_the_result(fake_engine, data, monkeypatch, err):
    X, y = data

    def refuse(*a, **k):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(cache.tempfile, "mkstemp", refuse)
    with pytest.warns(cache.CacheWarning, match="not cached"):
        run = _train(X, y)
    assert len(run.folds) == 3 and fake_engine.n == 1
    assert cache.entries().empty


def test_unusable_cache_dir_still_returns_the_result(fake_engine, data, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("BNAPP_CACHE_DIR", str(blocker / "cache"))
    X, y = data
    with pytest.warns(cache.CacheWarning):
        run = _train(X, y)
    assert len(run.folds) == 3


def test_read_only_cache_dir_still_serves_and_computes(fake_engine, data, monkeypatch):
    X, y = data
    _train(X, y)
    real_mkstemp = cache.tempfile.mkstemp

    def read_only(*args, **kwargs):  # as mkstemp fails in a directory mode 0500 (root or not)
        if kwargs.get("dir") and Path(kwargs["dir"]).is_relative_to(cache.cache_dir()):
            raise PermissionError(errno.EACCES, "Permission denied", str(kwargs["dir"]))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(cache.tempfile, "mkstemp", read_only)
    _train(X, y)
    assert fake_engine.n == 1, "served from the cache"
    with pytest.warns(cache.CacheWarning, match="cannot write"):
        _train(X + 1, y)
    assert fake_engine.n == 2, "computed, not stored"
    _train(X + 1, y)
    assert fake_engine.n == 3, "nothing was half-written to be served later"


# ---------------------------------------------------------------------------------- list, open, clear


def test_list_open_and_clear(fake_engine, data):
    X, y = data
    _train(X, y)
    _train(X, y, spec=ArchSpec.study_zscore())
    table = cache.entries()
    assert list(table.columns) == cache.LIST_COLUMNS
    protocol = " · 3-fold CV, 4 epochs"  # the run's label names the protocol too
    assert sorted(table.label) == sorted([ArchSpec().label + protocol,
                                          ArchSpec.study_zscore().label + protocol])
    assert set(table.kind) == {"run"}
    key = table.key[table.label == ArchSpec.study_zscore().label + protocol].item()
    reopened = cache.open_entry(key[:10])
    assert reopened.spec == ArchSpec.study_zscore()
    assert cache.remove(key)
    assert len(cache.entries()) == 1
    assert cache.clear() == 1
    assert cache.entries().empty and not list(cache.cache_dir().glob("*.npz"))


def test_resolve_refuses_unknown_keys(fake_engine, data):
    with pytest.raises(KeyError, match="no cache entries"):
        cache.resolve("abc")
    with pytest.raises(ValueError, match="not a cache key"):
        cache.load("run", "../../etc/passwd")


def test_grid_cache_round_trip_is_identical(fake_engine, data):
    X, y = data
    specs = [ArchSpec(), ArchSpec(hidden=(3, 4)), ArchSpec.study_zscore()]
    kw = dict(features=FEATURES, target="Ueq", data_key="d1", n_jobs=1)
    first = cached.cached_grid(X, y, FakeProtocol(), specs, **kw)
    second = cached.cached_grid(X, y, FakeProtocol(), specs, **kw)
    assert fake_engine.n == 1
    pd.testing.assert_frame_equal(first, second)
    assert first.to_csv(index=False) == second.to_csv(index=False)
    direct = fake_grid(X, y, FakeProtocol(), specs, features=FEATURES, n_jobs=1)
    np.testing.assert_array_equal(first.cv_mse_mean.to_numpy(), direct.cv_mse_mean.to_numpy())
    assert cache.entries().kind.tolist() == ["grid"]
    cached.cached_grid(X, y, FakeProtocol(seed=3), specs, **kw)
    assert fake_engine.n == 2, "two distinct grids"


# ---------------------------------------------------------------------------------- restart

_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np
    sys.path.insert(0, sys.argv[2])
    from tests.jobs import fakes
    from bnapp.jobs import cache, cached
    from bnapp.engine.model import ArchSpec
    from bnapp.engine.results import run_to_bytes
    if sys.argv[1] == "read":
        def refuse(*a, **k):
            raise SystemExit("trained although the result was cached")
        cached.train_run = refuse
    else:
        cached.train_run = fakes.fake_train
    X = np.arange(60.0).reshape(12, 5) ** 1.5
    y = X[:, 2] / 2
    feats = ["Upre", "U120", "Upos", "PP", "UF"]
    run = cached.cached_train(X, y, ArchSpec(), fakes.FakeProtocol(), features=feats, target="Ueq",
                            data_key=cache.array_fingerprint(X, y, feats, "Ueq"))
    sys.stdout.buffer.write(run_to_bytes(run))
    """
)


@pytest.mark.slow
def test_cache_persists_across_a_restart(tmp_path):
    env = {**os.environ, "BNAPP_CACHE_DIR": str(tmp_path / "shared-cache")}
    repo = Path(__file__).resolve().parents[2]
    outputs = []
    for mode in ("write", "read"):
        proc = subprocess.run([sys.executable, "-c", _SCRIPT, mode, str(repo)], cwd=repo,
                              env=env, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode()
        outputs.append(proc.stdout)
    assert len(outputs[0]) > 1000 and same_run(outputs[0], outputs[1])


def test_fake_train_makes_a_complete_run():
    X = np.random.default_rng(1).normal(size=(12, 5))
    run = fake_train(X, X[:, 0], ArchSpec(), FakeProtocol(), features=list("abcde"))
    back = run_from_bytes(run_to_bytes(run))
    assert len(back.folds) == 3
    assert sorted(np.concatenate([f.test_rows for f in back.folds]).tolist()) == list(range(12))
    np.testing.assert_array_equal(back.folds[1].weights.kernels[0], run.folds[1].weights.kernels[0])
