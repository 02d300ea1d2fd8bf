"""Once per server process, in the background, after the first page is drawn: a training worker
started (it boots in a process of its own), and what later pages import imported while no page
is being drawn.

Why the imports wait for idle moments: they run on the server's own interpreter, and an import
holds the GIL that a page's script needs, so a page drawn during one (the Train click right
after opening the app) would take up to twice as long."""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
import time
from collections.abc import Iterator

# What pages after the Data page import on first use and the Data page does not: scipy and
# statsmodels (the analyses, ~1 s together), openpyxl (XLSX downloads), the export bundle.
# Imported on a background thread, the user's first visit to those pages does not pay for them.
# scipy.stats comes in parts (what it imports first, then itself), so that no one import holds
# up a click for more than ~0.3 s.
MODULES = (
    "scipy.special",
    "scipy.linalg",
    "scipy.sparse",
    "scipy.spatial",
    "scipy.optimize",
    "scipy.ndimage",
    "scipy.integrate",
    "scipy.interpolate",
    "scipy.stats",
    "statsmodels.regression.linear_model",
    "statsmodels.nonparametric.smoothers_lowess",
    "bnapp.analyses.predict",
    "bnapp.analyses.layer_tables",
    "bnapp.report.run_report",
    "openpyxl",
)
# an import starts only after this long without any script run (a click usually comes with a
# burst of them: the page's, then its rerun)
IDLE_SECONDS = 0.3
logger = logging.getLogger(__name__)
_started = threading.Event()
_lock = threading.Lock()
_running = 0  # script runs drawing a page right now, in any session
_last_end = 0.0  # time.monotonic() when the last one ended


@contextlib.contextmanager
def script_run() -> Iterator[None]:
    """Wrap a script run (the whole of app.py) so the warm-up's imports keep out of its way."""
    global _running, _last_end
    with _lock:
        _running += 1
    try:
        yield
    finally:  # also when st.stop() or a rerun ends the script early
        with _lock:
            _running -= 1
            _last_end = time.monotonic()


def start() -> bool:
    """Once per process, on a background thread: prestart a training worker with the trainer
    loaded, then import MODULES, each at an idle moment. Returns whether this call started it."""
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
    from bnapp.jobs import processes, training_worker

    processes.prestart_worker(training_worker.warm_trainer)


def _import_modules() -> None:
    for name in MODULES:
        wait_idle()
        importlib.import_module(name)


def wait_idle(poll: float = 0.05) -> None:
    """Return once no script run has been active for IDLE_SECONDS."""
    while True:
        with _lock:
            quiet = time.monotonic() - _last_end
            if _running == 0 and quiet >= IDLE_SECONDS:
                return
        time.sleep(max(poll, IDLE_SECONDS - quiet) if _running == 0 else poll)
