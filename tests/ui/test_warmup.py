"""The dashboard's background warm-up: once per process, a worker prestarted and the listed
modules imported; the module itself light enough to import before everything else."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading

import pytest

from bnapp.jobs import backend, tasks
from bnapp.ui import warmup


@pytest.fixture()
def fresh(monkeypatch):
    """A process where nothing was warmed yet; warm-up failures recorded instead of logged."""
    monkeypatch.setattr(warmup, "_started", set())
    failed = threading.Event()
    monkeypatch.setattr(warmup.logger, "warning", lambda *a, **k: failed.set())
    return failed


def _join_warmups() -> None:
    for thread in threading.enumerate():
        if thread.name.startswith("bnapp-warmup-"):
            thread.join(60)


def test_the_worker_is_prestarted_once_with_the_trainers_warm_up(fresh, monkeypatch):
    calls = []
    monkeypatch.setattr(backend, "prestart_worker", calls.append)
    assert warmup.start_worker() is True
    assert warmup.start_worker() is False, "a later script run starts nothing"
    _join_warmups()
    assert calls == [tasks.warm_trainer] and not fresh.is_set()


def test_the_listed_modules_are_imported_once(fresh, tmp_path, monkeypatch):
    (tmp_path / "bnapp_warmup_probe.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(warmup, "MODULES", ("bnapp_warmup_probe",))
    monkeypatch.delitem(sys.modules, "bnapp_warmup_probe", raising=False)
    assert warmup.start_imports() is True and warmup.start_imports() is False
    _join_warmups()
    assert "bnapp_warmup_probe" in sys.modules and not fresh.is_set()
    sys.modules.pop("bnapp_warmup_probe")


def test_every_listed_module_exists():
    for name in warmup.MODULES:
        assert importlib.util.find_spec(name) is not None, name


def test_importing_the_warm_up_loads_nothing_heavy():
    probe = ("import sys, bnapp.ui.warmup; "
             "print(sorted(m for m in ('numpy', 'pandas', 'streamlit', 'bnapp.jobs') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
