"""Issue 28: a destructive command refuses an empty or blank selector, and warnings reach the
command line's user as one plain line."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from bnapp import show_warning
from bnapp.cli import main
from bnapp.engine.model import ArchSpec
from bnapp.jobs import cache, cached
from tests.cli.test_train_grid_cache import FEATURES, _fill_cache
from tests.jobs.fakes import FakeProtocol, fake_train

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("key", ["", " ", "\t "])
def test_cache_clear_with_an_empty_key_deletes_nothing(key, monkeypatch, capsys):
    table = _fill_cache(monkeypatch)
    capsys.readouterr()
    assert main(["cache", "clear", "--key", key]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the key is empty") and err.count("\n") == 1
    assert "--all" in err
    assert cache.entries().key.tolist() == table.key.tolist(), "nothing deleted"


def test_cache_clear_refuses_an_empty_key_with_a_single_entry(monkeypatch, capsys):
    """The reported case: the only entry, which an empty prefix used to match."""
    table = _fill_cache(monkeypatch)
    cache.remove(table.key[1])
    assert main(["cache", "clear", "--key", ""]) == 2
    assert cache.entries().key.tolist() == [table.key[0]]
    assert main(["cache", "open", " ", "--out", "unused"]) == 2
    with pytest.raises(KeyError):
        cache.resolve("  ")


def read_only(path, payload):
    raise OSError(errno.EROFS, "Read-only file system")


def test_a_cache_warning_is_one_plain_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cache, "_atomic_write", read_only)
    monkeypatch.setattr(cached, "train_run", fake_train)
    X = np.random.default_rng(6).normal(60, 9, size=(15, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show_warning  # what main installs
        cached.cached_train(X, X[:, 0], ArchSpec(), FakeProtocol(), features=FEATURES,
                            target="Ueq", data_key="ro", data_name="ro.csv")
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("warning: ") for line in lines), lines
    assert any("Read-only file system" in line for line in lines)
    assert not any(".py:" in line or "CacheWarning" in line for line in lines), lines


@pytest.mark.slow
def test_python_m_bnapp_shows_warnings_as_one_plain_line(urea_csv, tmp_path):
    """A cache directory that cannot be made (its parent is a file): every save warns."""
    (tmp_path / "file").write_text("")
    env = {**os.environ, "BNAPP_CACHE_DIR": str(tmp_path / "file" / "cache")}
    done = subprocess.run([sys.executable, "-m", "bnapp", "train", "--data", str(urea_csv),
                           "--epochs", "1", "--folds", "2", "--out", str(tmp_path / "o")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = re.split(r"[\r\n]+", done.stderr)  # the progress bar redraws itself with CR
    warned = [line for line in lines if "warning" in line.lower()]
    assert any("not cached" in line for line in warned), done.stderr
    assert all(line.startswith("warning: ") for line in warned), warned
    assert ".py:" not in done.stderr and "CacheWarning" not in done.stderr
