"""The dashboard's background warm-up: once per process, a worker prestarted and the listed
modules imported."""

from __future__ import annotations

import sys
import threading

from bnapp.ui import warmup


def test_warm_up_runs_once_prestarts_a_worker_and_imports_the_listed_modules(tmp_path,
                                                                             monkeypatch):
    (tmp_path / "bnapp_warmup_probe.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(warmup, "MODULES", ("bnapp_warmup_probe",))
    monkeypatch.setattr(warmup, "_started", threading.Event())
    prestarted = []
    monkeypatch.setattr(warmup.runner, "prestart_worker", lambda: prestarted.append(1))
    failed = threading.Event()
    monkeypatch.setattr(warmup.logger, "warning", lambda *a, **k: failed.set())
    assert warmup.start() is True
    assert warmup.start() is False, "a second call (the next script run) starts nothing"
    for thread in threading.enumerate():
        if thread.name == "bnapp-warmup":
            thread.join(60)
    assert "bnapp_warmup_probe" in sys.modules and prestarted == [1] and not failed.is_set()
    sys.modules.pop("bnapp_warmup_probe")


def test_every_listed_module_exists():
    import importlib.util

    for name in warmup.MODULES:
        assert importlib.util.find_spec(name) is not None, name
