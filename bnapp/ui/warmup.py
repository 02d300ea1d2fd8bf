"""Once per server process, in the background: a training worker started, and what later pages
import imported, after the first page is drawn."""

from __future__ import annotations

import importlib
import logging
import threading

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
_started = threading.Event()
_lock = threading.Lock()


def start() -> bool:
    """Once per process, on a background thread: prestart a training worker (its trainer
    loaded; it boots in a process of its own), then import MODULES. Returns whether this call
    started it."""
    with _lock:
        if _started.is_set():
            return False
        _started.set()
    threading.Thread(target=_warm, name="bnapp-warmup", daemon=True).start()
    return True


def _warm() -> None:
    try:
        _prestart_worker()
        _import_modules()
    except Exception:  # noqa: BLE001 - a failed warm-up only means the first use pays for it
        logger.warning("background warm-up failed; done on first use instead", exc_info=True)


def _prestart_worker() -> None:
    from bnapp.jobs import backend, tasks

    backend.prestart_worker(tasks.warm_trainer)


def _import_modules() -> None:
    for name in MODULES:
        importlib.import_module(name)
