"""The engine's benchmark: the study's protocol batched vs a plain torch loop, and the whole grid.

Figures only; nothing here asserts on time. See docs/performance.md for what was measured.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bnapp.engine.grid import run_grid, study_grid
from bnapp.engine.kernel import epoch_orders
from bnapp.engine.model import ArchSpec, init_weights
from bnapp.engine.protocols import Protocol
from bnapp.engine.reference import train_reference
from bnapp.engine.train import make_splits, model_rngs, train_run
from bnapp.intake.data import STUDY_INPUTS, Dataset, demo_dataset, load_dataset

SEED_CSV = Path(__file__).resolve().parents[3] / "shared" / "seed" / "Urea.csv"

# a fresh interpreter: imports, then the first study-protocol run (numba compile or cache load).
# bnapp.engine.train loads the kernel (and numba) on first use; importing it here keeps numba's import
# in the first figure and only the compilation or cache load in the second.
_FIRST_CALL = """
import time, sys
t = time.perf_counter()
import numpy as np
import bnapp.engine.kernel
from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol
from bnapp.engine.train import train_run
data = np.load(sys.argv[1])
t_import = time.perf_counter()
train_run(data["X"], data["y"], ArchSpec.study_e2e(), Protocol.study(), features=list("abcde"))
print(t_import - t, time.perf_counter() - t_import)
"""


def bench_dataset(path: Path | None = None) -> Dataset:
    """The given file, else the study's Urea.csv beside the repository, else the demo cohort.

    load_dataset keeps the usable rows (the study's Ueq >= Upos rule included); DataError if not.
    """
    if path is not None:
        return load_dataset(path)
    return load_dataset(SEED_CSV) if SEED_CSV.is_file() else demo_dataset()


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def first_call_seconds(X: np.ndarray, y: np.ndarray, *, cold: bool) -> tuple[float, float]:
    """(imports, first run) in a new process; cold=True compiles into an empty numba cache."""
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "data.npz", X=X, y=y)
        if cold:
            env["NUMBA_CACHE_DIR"] = tmp
        out = subprocess.run([sys.executable, "-c", _FIRST_CALL, str(Path(tmp) / "data.npz")],
                             env=env, capture_output=True, text=True, check=True)
    imports, run = (float(v) for v in out.stdout.split()[-2:])
    return imports, run


def plain_torch_loop(X: np.ndarray, y: np.ndarray, protocol: Protocol) -> None:
    """The same models trained the way a user would write it: one torch.nn model per split,
    float32, plain SGD over the same mini-batch orders."""
    spec = ArchSpec.study_e2e()
    for split in make_splits(protocol, len(X)):
        init_rng, order_seed = model_rngs(protocol, split)
        orders = epoch_orders(len(split.train), protocol.epochs, order_seed)
        train_reference(spec, init_weights(spec, X.shape[1], init_rng), X[split.train],
                        y[split.train], orders, batch_size=protocol.batch_size, lr=protocol.lr,
                        dtype=torch.float32)


def benchmark(X: np.ndarray, y: np.ndarray, *, repeats: int = 5,
              log: Callable[[str], None] = print) -> dict:
    protocol = Protocol.study()
    features = STUDY_INPUTS[: X.shape[1]]
    figures: dict[str, float | int | str] = {"rows": len(X), "threads": os.cpu_count() or 1}

    imports, first = first_call_seconds(X, y, cold=False)
    figures |= {"startup_import_seconds": imports, "first_run_seconds": first,
                "startup_seconds": imports + first}
    log(f"fresh process: imports {imports:.2f} s, first study-protocol run {first:.2f} s "
        f"(numba code loaded from its on-disk cache)")
    imports, first = first_call_seconds(X, y, cold=True)
    figures["cold_compile_seconds"] = first
    log(f"fresh process, empty numba cache: first run (compile included) {first:.2f} s")

    def study() -> None:
        train_run(X, y, ArchSpec.study_e2e(), protocol, features=features)

    study()  # load the compiled kernel into this process
    times = [_timed(study) for _ in range(repeats)]
    figures["study_protocol_seconds"] = statistics.median(times)
    log(f"study protocol (10 splits x 200 epochs, e2e), batched: median "
        f"{figures['study_protocol_seconds'] * 1e3:.1f} ms of {repeats} (min {min(times) * 1e3:.1f} ms)")

    figures["plain_loop_seconds"] = _timed(lambda: plain_torch_loop(X, y, protocol))
    figures["speedup"] = figures["plain_loop_seconds"] / figures["study_protocol_seconds"]
    log(f"same work as a plain per-split torch.nn loop (float32): "
        f"{figures['plain_loop_seconds']:.2f} s -> speed-up {figures['speedup']:.0f}x")

    specs = study_grid()
    grid_protocol = Protocol(kind="kfold", folds=5)
    figures["grid_models"] = len(specs) * grid_protocol.folds
    figures["grid_seconds"] = _timed(lambda: run_grid(X, y, grid_protocol, specs, features=features))
    log(f"study grid ({len(specs)} configurations x 5 folds = {figures['grid_models']} models, "
        f"200 epochs): {figures['grid_seconds']:.2f} s")
    return figures
