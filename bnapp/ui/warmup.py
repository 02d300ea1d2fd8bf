"""Once per server process, in the background: a training worker started, and what later pages
import imported. Light to import itself (the standard library only): app.py starts the worker
before it imports the rest."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable

# What pages after the Data page import on first use and the Data page does not: scipy and
# statsmodels (the analyses, ~1.5 s together), openpyxl (XLSX downloads), the export bundle.
# Imported on a background thread, the user's first visit to those pages does not pay for them.
MODULES = (
    "scipy.stats",
    "statsmodels.nonparametric.smoothers_lowess",
    "bnapp.analyses.predict",
    "bnapp.analyses.importance",
    "bnapp.report.run_report",
    "openpyxl",
)
logger = logging.getLogger(__name__)
_started: set[str] = set()
_lock = threading.Lock()


def start_worker() -> bool:
    """Prestart a training worker (its trainer loaded): it boots in a process of its own, so the
    app calls this first; returns whether this call started it (once per process)."""
    return _once("worker", _prestart_worker)


def start_imports() -> bool:
    """Import MODULES; the app calls this after the first page is drawn, as these imports take
    the interpreter from the page's own work. Returns whether this call started it."""
    return _once("imports", _import_modules)


def _prestart_worker() -> None:
    from bnapp.jobs import backend, tasks

    backend.prestart_worker(tasks.warm_trainer)


def _import_modules() -> None:
    for name in MODULES:
        importlib.import_module(name)


def _once(name: str, fn: Callable[[], None]) -> bool:
    with _lock:
        if name in _started:
            return False
        _started.add(name)
    threading.Thread(target=_quietly, args=(fn,), name=f"bnapp-warmup-{name}",
                     daemon=True).start()
    return True


def _quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - a failed warm-up only means the first use pays for it
        logger.warning("background warm-up failed; done on first use instead", exc_info=True)
