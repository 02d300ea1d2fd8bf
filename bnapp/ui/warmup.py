"""Once per server process, after the first page is drawn: a training worker started, and what
later pages import imported, in the background."""

from __future__ import annotations

import importlib
import logging
import threading

from bnapp.jobs import runner

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
    """Start the warm-up thread unless this process already did; returns whether it started."""
    with _lock:
        if _started.is_set():
            return False
        _started.set()
    threading.Thread(target=_warm, name="bnapp-warmup", daemon=True).start()
    return True


def _warm() -> None:
    try:
        runner.prestart_worker()  # first: the worker process boots on the other core meanwhile
        for name in MODULES:
            importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a failed warm-up only means the first use pays for it
        logger.warning("background warm-up failed; pages import on first use", exc_info=True)
