"""The dashboard's background warm-up: once per process, a worker prestarted with the trainer's
warm-up, then the listed modules imported."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time

from bnapp.jobs import processes, training_worker
from bnapp.ui import warmup


def test_warm_up_runs_once_prestarts_the_trainer_and_imports_the_listed_modules(tmp_path,
                                                                                 monkeypatch):
    (tmp_path / "bnapp_warmup_probe.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(warmup, "MODULES", ("bnapp_warmup_probe",))
    monkeypatch.delitem(sys.modules, "bnapp_warmup_probe", raising=False)
    monkeypatch.setattr(warmup, "_started", threading.Event())  # as in a new process
    prestarted = []
    monkeypatch.setattr(processes, "prestart_worker", prestarted.append)
    failed = threading.Event()
    monkeypatch.setattr(warmup.logger, "warning", lambda *a, **k: failed.set())
    assert warmup.start() is True
    assert warmup.start() is False, "a later script run starts nothing"
    for thread in threading.enumerate():
        if thread.name == "bnapp-warmup":
            thread.join(60)
    assert prestarted == [training_worker.warm_trainer] and not failed.is_set()
    assert "bnapp_warmup_probe" in sys.modules
    sys.modules.pop("bnapp_warmup_probe")


def test_every_listed_module_exists():
    for name in warmup.MODULES:
        assert importlib.util.find_spec(name) is not None, name


def test_imports_wait_while_a_page_is_drawn(monkeypatch):
    monkeypatch.setattr(warmup, "IDLE_SECONDS", 0.2)
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (warmup.wait_idle(0.01), done.set()))
    with warmup.script_run():
        waiter.start()
        assert not done.wait(0.5), "an import started while a script was running"
    started = time.monotonic()
    assert done.wait(5), "the imports never went on once the page was drawn"
    assert time.monotonic() - started >= 0.15  # after a quiet spell, not at once
    waiter.join()
