"""Content-addressed store of trained runs and grid tables on the user's disk.

Why not `joblib.Memory`: it pickles return values, and a pickle executes code when loaded, so a
tampered cache file could run anything. Entries here are plain data instead: a RunResult as the
npz+JSON of `run_to_bytes`, a grid as CSV, each with a small JSON sidecar holding its metadata
and the sha256 of the payload. Keys are sha256 over canonical JSON of everything that decides
the result (data content, mapping and units via the data fingerprint, architecture, protocol
with its seed, features, target, library version), so a changed input can never hit a stale
entry.

Cached results hold patient-derived data: the directory is created readable by its owner only
(0700). Every write is atomic (temp file in the same directory + os.replace, payload first and
sidecar last), and a payload whose checksum or format does not verify is discarded, so a crash
or a flipped byte costs a recomputation, never a wrong answer. A full or read-only disk never
stops a computation: the store is skipped with a CacheWarning.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from bnapp import __version__
from bnapp.model import ArchSpec
from bnapp.results import RunResult, run_from_bytes, run_to_bytes

SIDECAR = ".json"
PAYLOAD = {"run": ".npz", "grid": ".csv"}


class CacheWarning(UserWarning):
    """The cache could not be read or written; the computation went on without it."""


# warnings raised on a job's thread are also collected there (jobs.py shows them per job)
_sinks = threading.local()


def _warn(message: str) -> None:
    sink = getattr(_sinks, "messages", None)
    if sink is not None:
        sink.append(message)
    warnings.warn(message, CacheWarning, stacklevel=3)


def cache_dir() -> Path:
    """BNAPP_CACHE_DIR or ~/.cache/bnapp; created (owner-only, 0700) when missing."""
    path = Path(os.environ.get("BNAPP_CACHE_DIR") or Path.home() / ".cache" / "bnapp").expanduser()
    if not path.is_dir():
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.chmod(0o700)  # mkdir's mode is filtered by the umask
        except OSError as exc:
            _warn(f"cache directory {path} cannot be created ({exc.strerror or exc}); results are not cached")
    return path


# --------------------------------------------------------------------------------------------
# keys


def _digest(obj) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _protocol_dict(protocol) -> dict:
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
            "protocol": _protocol_dict(protocol),
            "features": list(features),
            "target": target,
            "version": __version__,
        }
    )


def grid_key(data_fingerprint: str, protocol, specs: Iterable[ArchSpec] | None, features, target: str) -> str:
    """The cache key of a grid table (specs None = the study's whole grid)."""
    return _digest(
        {
            "kind": "grid",
            "data": data_fingerprint,
            "specs": None if specs is None else [s.to_dict() for s in specs],
            "protocol": _protocol_dict(protocol),
            "features": list(features),
            "target": target,
            "version": __version__,
        }
    )


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


def _paths(key: str, kind: str) -> tuple[Path, Path]:
    if not key or not all(c in "0123456789abcdef" for c in key):
        raise ValueError(f"not a cache key: {key!r}")
    base = cache_dir() / key
    return base.with_suffix(PAYLOAD[kind]), base.with_suffix(SIDECAR)


def _store(key: str, kind: str, payload: bytes, meta: dict) -> bool:
    """Write payload then sidecar; False (with a CacheWarning) when the disk refuses."""
    try:
        payload_path, meta_path = _paths(key, kind)
        sidecar = {
            **meta,
            "key": key,
            "kind": kind,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "version": __version__,
            "size_bytes": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        _atomic_write(payload_path, payload)
        _atomic_write(meta_path, json.dumps(sidecar, indent=1).encode())
        return True
    except OSError as exc:
        _warn(f"result not cached: cannot write to {cache_dir()} ({exc.strerror or exc})")
        return False


def _fetch(key: str, kind: str) -> tuple[bytes, dict] | None:
    """Verified payload and sidecar, or None; an entry that fails verification is deleted."""
    payload_path, meta_path = _paths(key, kind)
    try:
        meta = json.loads(meta_path.read_text())
        payload = payload_path.read_bytes()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        _discard(key, f"unreadable ({exc})")
        return None
    if meta.get("kind") != kind or hashlib.sha256(payload).hexdigest() != meta.get("sha256"):
        _discard(key, "checksum mismatch")
        return None
    return payload, meta


def _discard(key: str, why: str) -> None:
    _warn(f"cache entry {key[:12]} was corrupted ({why}); discarded, recomputing")
    try:
        remove(key)
    except OSError:
        pass  # a read-only cache: the entry keeps failing verification and is never used


# --------------------------------------------------------------------------------------------
# runs and grids


def save_run(key: str, run: RunResult, *, label: str = "", data_name: str = "") -> bool:
    meta = {
        "label": label or run.label,
        "data_name": data_name,
        "spec": run.spec.to_dict(),
        "protocol": run.protocol,
        "n_rows": int(len(run.y)),
        "n_folds": len(run.folds),
    }
    return _store(key, "run", run_to_bytes(run), meta)


def load_run(key: str) -> RunResult | None:
    """The cached run, or None when absent or corrupted (then the entry is discarded)."""
    found = _fetch(key, "run")
    if found is None:
        return None
    try:
        return run_from_bytes(found[0])
    except ValueError as exc:
        _discard(key, str(exc))
        return None


def _grid_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _grid_frame(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data))


def canonical_grid(frame: pd.DataFrame) -> pd.DataFrame:
    """The grid as it reads back from the cache, so a fresh and a cached grid are identical."""
    return _grid_frame(_grid_csv(frame))


def save_grid(key: str, frame: pd.DataFrame, *, label: str = "", data_name: str = "", protocol=None) -> bool:
    meta = {
        "label": label or f"grid of {len(frame)} configurations",
        "data_name": data_name,
        "protocol": None if protocol is None else _protocol_dict(protocol),
        "n_rows": int(len(frame)),
    }
    return _store(key, "grid", _grid_csv(frame), meta)


def load_grid(key: str) -> pd.DataFrame | None:
    found = _fetch(key, "grid")
    if found is None:
        return None
    try:
        return _grid_frame(found[0])
    except (ValueError, pd.errors.ParserError) as exc:
        _discard(key, str(exc))
        return None


# --------------------------------------------------------------------------------------------
# listing and clearing

LIST_COLUMNS = ["key", "kind", "label", "data_name", "created", "size_bytes", "n_rows"]


def entries() -> pd.DataFrame:
    """One row per cache entry, newest first."""
    rows = []
    directory = cache_dir()
    for meta_path in sorted(directory.glob(f"*{SIDECAR}")) if directory.is_dir() else []:
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue  # a half-written or foreign file; load_* discards it when asked for
        rows.append({c: meta.get(c) for c in LIST_COLUMNS})
    frame = pd.DataFrame(rows, columns=LIST_COLUMNS)
    return frame.sort_values("created", ascending=False, ignore_index=True)


def resolve(key_or_prefix: str) -> str:
    """The full key of the one entry starting with this prefix; KeyError otherwise."""
    keys = [k for k in entries()["key"] if k.startswith(key_or_prefix.strip().lower())]
    if len(keys) != 1:
        raise KeyError(f"{'no' if not keys else len(keys)} cache entries match {key_or_prefix!r}")
    return keys[0]


def open_entry(key: str) -> RunResult | pd.DataFrame | None:
    """Reopen a listed entry: a RunResult for a run, a DataFrame for a grid."""
    key = resolve(key)
    kinds = entries().set_index("key")["kind"]
    return load_run(key) if kinds[key] == "run" else load_grid(key)


def remove(key: str) -> bool:
    """Delete one entry (payload and sidecar); True when something was removed."""
    removed = False
    for suffix in (SIDECAR, *PAYLOAD.values()):  # sidecar first: no entry lists without payload
        try:
            (cache_dir() / key).with_suffix(suffix).unlink()
            removed = True
        except FileNotFoundError:
            pass
    return removed


def clear() -> int:
    """Delete every entry and leftover temp file; returns the number of entries removed."""
    keys = list(entries()["key"])
    for key in keys:
        remove(key)
    directory = cache_dir()
    if directory.is_dir():
        for leftover in directory.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        for suffix in PAYLOAD.values():  # payloads whose sidecar never got written
            for orphan in directory.glob(f"*{suffix}"):
                orphan.unlink(missing_ok=True)
    return len(keys)
