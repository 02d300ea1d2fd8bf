"""Content-addressed store of trained runs, grid tables and analyses on the user's disk.

Why not `joblib.Memory`: it pickles return values, and a pickle executes code when loaded, so a
tampered cache file could run anything. Entries here are plain data instead: a RunResult as the
npz+JSON of `run_to_bytes`, a grid as CSV, an analysis (DataFrames) as a ZIP of parquet files
(bnapp.jobs.payloads), each with a small JSON sidecar holding its metadata and the sha256 of the payload. Keys are
sha256 over canonical JSON of everything that decides the result (data content, mapping and
units via the data fingerprint, architecture, protocol with its seed, features, target, library
version), so a changed input can never hit a stale entry.

Runs and grids are the listed entries (`entries`). A run's analyses live in a folder named by
the run's key (`analyses/<run key>/`) and go with it: removing the run removes them, and they
are written only while the run itself is cached.

Cached results hold patient-derived data: the directory is created readable by its owner only
(0700). Every write is atomic (temp file in the same directory + os.replace, payload first and
sidecar last), and a payload whose checksum or format does not verify is discarded, so a crash
or a flipped byte costs a recomputation, never a wrong answer. A full or read-only disk never
stops a computation: the store is skipped with a CacheWarning.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from bnapp import __version__
from bnapp.engine.model import ArchSpec
from bnapp.engine.results import RunResult, run_from_bytes, run_to_bytes
from bnapp.intake.data import Dataset
from bnapp.jobs.payloads import Frames, frames_from_bytes, frames_to_bytes, grid_csv, grid_frame

SIDECAR = ".json"
PAYLOAD = {"run": ".npz", "grid": ".csv", "analysis": ".zip"}
ANALYSES = "analyses"  # cache_dir()/analyses/<run key>/<analysis key>.{zip,json}


class CacheWarning(UserWarning):
    """The cache could not be read or written; the computation went on without it."""


# warnings raised on a job's thread are also collected there (jobs.py shows them per job)
sinks = threading.local()


def warn(message: str) -> None:
    sink = getattr(sinks, "messages", None)
    if sink is not None:
        sink.append(message)
    warnings.warn(message, CacheWarning, stacklevel=3)


@contextmanager
def collected_warnings() -> Iterator[list[str]]:
    """The cache's warnings raised on this thread meanwhile, also collected in a list (a page
    shows them to its user, as a job keeps its own)."""
    previous = getattr(sinks, "messages", None)
    sinks.messages = messages = []
    try:
        yield messages
    finally:
        sinks.messages = previous


def cache_dir() -> Path:
    """BNAPP_CACHE_DIR or ~/.cache/bnapp; created (owner-only, 0700) when missing."""
    path = Path(os.environ.get("BNAPP_CACHE_DIR") or Path.home() / ".cache" / "bnapp").expanduser()
    if not path.is_dir():
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.chmod(0o700)  # mkdir's mode is filtered by the umask
        except OSError as exc:
            warn(f"cache directory {path} cannot be created ({exc.strerror or exc}); results "
                 "are not cached")
    return path


# --------------------------------------------------------------------------------------------
# keys


def _digest(obj) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def protocol_dict(protocol) -> dict:
    return protocol.to_dict() if hasattr(protocol, "to_dict") else dict(protocol)


def array_fingerprint(X, y, features: Iterable[str], target: str, row_ids=None) -> str:
    """sha256 of raw arrays and their column names, for data that has no Dataset.fingerprint()."""
    h = hashlib.sha256()
    h.update(json.dumps([list(features), target]).encode())
    for arr in (X, y, row_ids):
        if arr is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(arr)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def run_key(data_fingerprint: str, spec: ArchSpec, protocol, features, target: str) -> str:
    """The cache key of one trained run; the protocol dict carries the seed."""
    return _digest(
        {
            "kind": "run",
            "data": data_fingerprint,
            "spec": spec.to_dict(),
            "protocol": protocol_dict(protocol),
            "features": list(features),
            "target": target,
            "version": __version__,
        }
    )


# Part of a grid's key: raise it when the grid table gains or changes columns, so a table of the
# old shape is computed anew (the package version would also retire every cached run).
GRID_SCHEMA = 3  # 2: cv_mse_se; 3: instability


def grid_key(data_fingerprint: str, protocol, specs: Iterable[ArchSpec] | None, features,
             target: str, *, stability: bool = True) -> str:
    """The cache key of a grid table (specs None = the study's whole grid; stability False: one
    without the instability column, a key of its own, while a full grid keeps its key)."""
    return _digest(
        {
            "kind": "grid",
            "schema": GRID_SCHEMA,
            "data": data_fingerprint,
            "specs": None if specs is None else [s.to_dict() for s in specs],
            "protocol": protocol_dict(protocol),
            "features": list(features),
            "target": target,
            "version": __version__,
            **({} if stability else {"stability": False}),
        }
    )


def trained_on(key: str, run: RunResult, dataset: Dataset | None) -> bool:
    """Whether `dataset` is exactly the data `run` (cached under key) was trained on."""
    if dataset is None:
        return False
    return run_key(dataset.fingerprint(), run.spec, run.protocol, run.features,
                   run.target) == key


# Part of an analysis' key: raise it when analyses (run_tables' set of tables too) change their
# arguments or results without a new package version. 2: arguments bound to the signature, a
# Layer for layer + hidden_index, the settings' defaults. 3: run_tables' share_within, ice_pdp's
# in_training_range; 4: cohort intervals and verdicts in run_tables, the importance report.
ANALYSIS_SCHEMA = 4


def analysis_key(run_key: str, function: str, arguments: Mapping[str, object]) -> str:
    """The cache key of one analysis of a run: the function's qualified name and its arguments
    by name (call_arguments), hashed by joblib (which tells 1 from 1.0 from "1" and a tuple from
    a list)."""
    from joblib import hash as joblib_hash

    return _digest({"kind": "analysis", "schema": ANALYSIS_SCHEMA, "run": run_key,
                    "function": function, "version": __version__,
                    "arguments": joblib_hash(sorted(arguments.items()))})


# --------------------------------------------------------------------------------------------
# atomic files


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_key(key: str) -> str:
    if not key or not all(c in "0123456789abcdef" for c in key):
        raise ValueError(f"not a cache key: {key!r}")
    return key


def _analysis_dir(run_key: str) -> Path:
    return cache_dir() / ANALYSES / _check_key(run_key)


def _base(key: str, run_key: str | None = None) -> Path:
    """An entry's path without suffix: runs and grids at the top, analyses in their run's folder."""
    folder = cache_dir() if run_key is None else _analysis_dir(run_key)
    return folder / _check_key(key)


def _store(base: Path, kind: str, payload: bytes, meta: dict) -> bool:
    """Write payload then sidecar; False (with a CacheWarning) when the disk refuses."""
    try:
        sidecar = {
            **meta,
            "key": base.name,
            "kind": kind,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "version": __version__,
            "size_bytes": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        base.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _atomic_write(base.with_suffix(PAYLOAD[kind]), payload)
        _atomic_write(base.with_suffix(SIDECAR), json.dumps(sidecar, indent=1).encode())
        return True
    except OSError as exc:
        warn(f"result not cached: cannot write to {cache_dir()} ({exc.strerror or exc})")
        return False


def _fetch(base: Path, kind: str) -> tuple[bytes, dict] | None:
    """Verified payload and sidecar, or None; an entry that fails verification is deleted."""
    try:
        meta = json.loads(base.with_suffix(SIDECAR).read_text())
        payload = base.with_suffix(PAYLOAD[kind]).read_bytes()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        _discard(base, f"unreadable ({exc})")
        return None
    if meta.get("kind") != kind or hashlib.sha256(payload).hexdigest() != meta.get("sha256"):
        _discard(base, "checksum mismatch")
        return None
    return payload, meta


def _discard(base: Path, why: str) -> None:
    warn(f"cache entry {base.name[:12]} was corrupted ({why}); discarded, recomputing")
    try:
        _unlink(base)
        if base.parent == cache_dir():  # a run: its analyses describe what was discarded
            _drop_analyses(base.name)
    except OSError:
        pass  # a read-only cache: the entry keeps failing verification and is never used


def _drop_analyses(run_key: str) -> bool:
    """Delete a run's analyses; True when there were any. A clear racing a page that writes an
    analysis may find files already gone: that is fine."""
    analyses = _analysis_dir(run_key)
    if not analyses.is_dir():
        return False
    shutil.rmtree(analyses, ignore_errors=True)
    return True


def _unlink(base: Path) -> bool:
    """Delete an entry's sidecar and payload; True when something was removed."""
    removed = False
    for suffix in (SIDECAR, *PAYLOAD.values()):  # sidecar first: no entry lists without payload
        try:
            base.with_suffix(suffix).unlink()
            removed = True
        except FileNotFoundError:
            pass
    return removed


# --------------------------------------------------------------------------------------------
# entries: a run (npz + JSON), a grid (CSV), an analysis (DataFrames as parquet files in a ZIP)

Kind = Literal["run", "grid", "analysis"]


# each kind's payload from its value, its value back (ValueError when the payload is not one),
# and its sidecar's description
_ENCODE = {"run": run_to_bytes, "grid": grid_csv, "analysis": frames_to_bytes}
_DECODE = {"run": run_from_bytes, "grid": grid_frame, "analysis": frames_from_bytes}


def _describe(kind: Kind, value, label: str, data_name: str, protocol) -> dict:
    if kind == "run":
        return {"label": label or value.label, "data_name": data_name,
                "spec": value.spec.to_dict(), "protocol": value.protocol,
                "n_rows": int(len(value.y)), "n_folds": len(value.folds)}
    if kind == "grid":
        return {"label": label or f"grid of {len(value)} configurations", "data_name": data_name,
                "protocol": None if protocol is None else protocol_dict(protocol),
                "n_rows": int(len(value))}
    return {"label": label}


def is_stored(run_key: str) -> bool:
    """Whether the run is in the cache (its analyses can be stored beside it)."""
    return _base(run_key).with_suffix(SIDECAR).is_file()


def save(kind: Kind, key: str, value, *, run_key: str | None = None, label: str = "",
         data_name: str = "", protocol=None) -> bool:
    """Store a run, a grid or (with run_key) an analysis of the run cached under run_key, with
    what describes it in the sidecar (a grid's protocol: the one it was trained under, the
    default None). A run stored anew (e.g. after a corrupted one) starts without analyses; an
    analysis of a run not cached is skipped (False): a run deleted while a tab still shows it is not
    written back piece by piece."""
    if kind == "run":
        _drop_analyses(key)
    if kind == "analysis" and not is_stored(run_key):
        return False
    try:
        payload = _ENCODE[kind](value)
    except (TypeError, ValueError, NotImplementedError) as exc:  # e.g. text parquet cannot encode
        warn(f"result of {label} not cached: it cannot be stored ({exc})")
        return False
    meta = _describe(kind, value, label, data_name, protocol)
    return _store(_base(key, run_key), kind, payload,
                  meta if run_key is None else {**meta, "run_key": run_key})


def load(kind: Kind, key: str, *, run_key: str | None = None):
    """The cached run, grid or (with run_key) analysis, or None when absent or corrupted (then
    the entry is discarded)."""
    base = _base(key, run_key)
    found = _fetch(base, kind)
    if found is None:
        return None
    try:
        return _DECODE[kind](found[0])
    except ValueError as exc:  # pandas' ParserError is one
        _discard(base, str(exc))
        return None


# --------------------------------------------------------------------------------------------
# an analysis through the cache


def analysis_name(fn: Callable) -> str:
    """The name an analysis function's results are cached under: module and qualified name
    (bnapp's without their subpackage, as they were first cached: bnapp.stages.…)."""
    module = fn.__module__
    if module.startswith("bnapp."):
        module = "bnapp." + module.rsplit(".", 1)[-1]
    return f"{module}.{fn.__qualname__}"


def call_arguments(fn: Callable, args: tuple = (), kwargs: Mapping | None = None) -> dict:
    """fn(run, *args, **kwargs)'s arguments after the run, by name and with the defaults filled
    in: however a call is spelled (positional, keyword, a default left out), one key."""
    bound = inspect.signature(fn).bind(None, *args, **(kwargs or {}))
    bound.apply_defaults()
    run, *names = bound.arguments
    return {name: bound.arguments[name] for name in names}


def call_key(run_key: str, fn: Callable, args: tuple = (), kwargs: Mapping | None = None) -> str:
    """The analysis key of fn(run, *args, **kwargs) for the run cached under run_key."""
    return analysis_key(run_key, analysis_name(fn), call_arguments(fn, args, kwargs))


def has_analysis(run_key: str, key: str) -> bool:
    return _base(key, run_key).with_suffix(SIDECAR).is_file()


def cached_analysis(run_key: str, fn: Callable[..., Frames], run, *args, **kwargs) -> Frames:
    """fn(run, *args, **kwargs) through the cache, stored beside the run cached under run_key:
    read back from disk after a restart, recomputed when corrupted."""
    key = call_key(run_key, fn, args, kwargs)
    result = load("analysis", key, run_key=run_key)
    if result is None:
        result = fn(run, *args, **kwargs)
        save("analysis", key, result, run_key=run_key, label=analysis_name(fn))
    return result


def _n_analyses(run_key: str) -> int:
    folder = cache_dir() / ANALYSES / run_key
    return len(list(folder.glob(f"*{SIDECAR}"))) if folder.is_dir() else 0


# --------------------------------------------------------------------------------------------
# listing and clearing

LIST_COLUMNS = ["key", "kind", "label", "data_name", "created", "size_bytes", "n_rows",
                "n_analyses"]


def entries() -> pd.DataFrame:
    """One row per cached run or grid, newest first; n_analyses counts a run's cached analyses."""
    rows = []
    directory = cache_dir()
    for meta_path in sorted(directory.glob(f"*{SIDECAR}")) if directory.is_dir() else []:
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue  # a half-written or foreign file; load_* discards it when asked for
        meta["n_analyses"] = _n_analyses(meta_path.stem)
        rows.append({c: meta.get(c) for c in LIST_COLUMNS})
    frame = pd.DataFrame(rows, columns=LIST_COLUMNS)
    return frame.sort_values("created", ascending=False, ignore_index=True)


def resolve(key_or_prefix: str) -> str:
    """The full key of the one entry starting with this prefix; KeyError otherwise (also for
    an empty or blank prefix, which every key starts with)."""
    if not key_or_prefix.strip():
        raise KeyError("an empty key matches no single cache entry")
    keys = [k for k in entries()["key"] if k.startswith(key_or_prefix.strip().lower())]
    if len(keys) != 1:
        raise KeyError(f"{'no' if not keys else len(keys)} cache entries match {key_or_prefix!r}")
    return keys[0]


def open_entry(key: str) -> RunResult | pd.DataFrame | None:
    """Reopen a listed entry: a RunResult for a run, a DataFrame for a grid."""
    key = resolve(key)
    kinds = entries().set_index("key")["kind"]
    return load(kinds[key], key)


def remove(key: str) -> bool:
    """Delete one entry (payload and sidecar) and a run's analyses; True when something was
    removed."""
    removed = _unlink(_base(key))
    return _drop_analyses(key) or removed


def clear() -> int:
    """Delete every entry, every analysis and leftover temp file; returns the number of runs
    and grids removed."""
    keys = list(entries()["key"])
    for key in keys:
        remove(key)
    directory = cache_dir()
    if (directory / ANALYSES).is_dir():  # analyses of runs that were never listed
        shutil.rmtree(directory / ANALYSES, ignore_errors=True)
    if directory.is_dir():
        for leftover in directory.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        for suffix in PAYLOAD.values():  # payloads whose sidecar never got written
            for orphan in directory.glob(f"*{suffix}"):
                orphan.unlink(missing_ok=True)
    return len(keys)
