"""What a failed job says: the message alone for errors written for the user, else what happened
and what to do."""

from __future__ import annotations

import logging
import re
import traceback
from pathlib import Path

# errors whose message is written for the user (it says what to do): shown without their class
USER_ERRORS = ("TrainingDiverged", "DataError")
PACKAGE = str(Path(__file__).resolve().parents[1])  # bnapp/
logger = logging.getLogger(__name__)  # app.py prints the "bnapp" loggers' INFO to stderr


class JobFailed(RuntimeError):
    """Job.result() of a job that failed; the message is the job's error."""


def user_message(exc: BaseException) -> str | None:
    """exc's message when it was written for the user (it says what to do): bnapp's DataError,
    TrainingDiverged and JobFailed, and the ValueErrors and KeyErrors bnapp's own code raises
    ("too few rows for 10 folds"); None for a bug or a library's error."""
    name = type(exc).__name__
    if name in USER_ERRORS or isinstance(exc, JobFailed):
        return str(exc)
    if type(exc) in (ValueError, KeyError) and exc.args and _raised_by_bnapp(exc):
        return str(exc.args[0])  # a KeyError's str() would quote it
    return None


def describe(exc: BaseException) -> str:
    """A failed job's error: the message alone for errors written for the user, else what
    happened and what to do, with the class name (it helps a report); the traceback is logged."""
    name = type(exc).__name__
    if name in ("TerminatedWorkerError", "KilledWorker", "BrokenProcessPool"):
        return (
            "a worker process died mid-job (killed, or out of memory); other jobs are "
            f"unaffected, and submitting this one again retries it. ({name}: {str(exc)[:300]})"
        )
    message = user_message(exc)
    if message is not None:
        return message
    logger.error("job failed unexpectedly", exc_info=exc)
    return (f"an unexpected error stopped this job ({name}: {str(exc)[:300]}). Your data and "
            "other results are kept: submit it again, and if it fails again, report it with "
            "the terminal's log.")


def _raised_by_bnapp(exc: BaseException) -> bool:
    """Whether bnapp's own code raised exc (its ValueErrors are messages such as "too few rows
    for 10 folds"; numpy's are not). From a worker process loky passes the traceback as text."""
    remote = getattr(exc.__cause__, "tb", None)
    if isinstance(remote, str):
        files = re.findall(r'File "([^"]+)"', remote)
    else:
        files = [frame.filename for frame in traceback.extract_tb(exc.__traceback__)]
    return bool(files) and files[-1].startswith(PACKAGE)
