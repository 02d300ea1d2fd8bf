"""What the cache stores for a grid (CSV) and an analysis (its DataFrames as parquet files in
a ZIP), and back; a run's payload is engine.results' own format."""

from __future__ import annotations

import io
import json
import zipfile

import pandas as pd

Frames = pd.DataFrame | tuple[pd.DataFrame, ...] | dict[str, pd.DataFrame]


def grid_csv(frame: pd.DataFrame) -> bytes:
    """A grid table as the cache stores it."""
    return frame.to_csv(index=False).encode()


def grid_frame(data: bytes) -> pd.DataFrame:
    """A stored grid table read back."""
    return pd.read_csv(io.BytesIO(data))


def canonical_grid(frame: pd.DataFrame) -> pd.DataFrame:
    """The grid as it reads back from the cache, so a fresh and a cached grid are identical."""
    return grid_frame(grid_csv(frame))


def frames_to_bytes(result: Frames) -> bytes:
    """parquet keeps dtypes (categories, integers, strings) exactly, unlike CSV."""
    if isinstance(result, pd.DataFrame):
        shape, parts = "frame", {"0": result}
    elif isinstance(result, tuple):
        shape, parts = "tuple", {str(i): part for i, part in enumerate(result)}
    else:
        shape, parts = "dict", result
    if not (isinstance(parts, dict) and all(isinstance(name, str) and isinstance(part, pd.DataFrame)
                                            for name, part in parts.items())):
        raise TypeError("only a DataFrame, or a tuple or str-keyed dict of DataFrames, is cached, "
                        f"not {type(result).__name__}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", json.dumps({"shape": shape, "names": list(parts)}))
        for i, part in enumerate(parts.values()):
            archive.writestr(f"{i}.parquet", part.to_parquet())
    return buffer.getvalue()


def frames_from_bytes(data: bytes) -> Frames:
    """The inverse of frames_to_bytes; ValueError when data is not one of its outputs."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            names = manifest["names"]
            # no reader threads: small tables, and arrow's pool can abort the process at exit
            # after reading from a Python file object (apache/arrow#50482)
            parts = [pd.read_parquet(io.BytesIO(archive.read(f"{i}.parquet")), use_threads=False)
                     for i in range(len(names))]
        shape = manifest["shape"]
    except (zipfile.BadZipFile, KeyError, TypeError, OSError) as exc:
        raise ValueError(f"not an analysis payload ({exc})") from exc
    if shape == "frame" and len(parts) == 1:
        return parts[0]
    if shape == "tuple":
        return tuple(parts)
    if shape == "dict":
        return dict(zip(names, parts, strict=True))
    raise ValueError(f"not an analysis payload (shape {shape!r})")
