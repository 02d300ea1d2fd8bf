"""`bench --scale`: training time and peak memory for 10k to 1M synthetic sessions, each size in a
process of its own (so each gets its own peak RSS). Figures only; nothing asserts on time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

SCALE_SIZES = (10_000, 100_000, 1_000_000)
FOLDS, EPOCHS = 10, 200

# one size: load the sessions, train the study network under 10-fold CV, report time and peak RSS
_ONE_SIZE = """
import json, resource, sys, time
import numpy as np
from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol
from bnapp.engine.train import train_run
data = np.load(sys.argv[1])
X, y = data["X"], data["y"]
protocol = Protocol(kind="kfold", folds=int(sys.argv[2]), epochs=int(sys.argv[3]))
t = time.perf_counter()
train_run(X, y, ArchSpec.study_e2e(), protocol, features=["Upre", "U120", "Upos", "PP", "UF"])
seconds = time.perf_counter() - t
usage = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM, not ru_maxrss: after fork + exec Linux's ru_maxrss keeps the parent's high-water mark
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                  "peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024}))
"""


def flops_per_row_epoch(hidden: Sequence[int] = (6,), n_inputs: int = 5, *,
                        input_bn: bool = True, hidden_bn: bool = True) -> int:
    """Floating-point operations one training row costs per epoch, counted by hand: a Dense
    layer 6 per weight (forward multiply-add, backward multiply-adds for the weight's gradient
    and the input's), a BN unit 16 (statistics, normalize, scale, and their backward), an
    activation unit 4 (an exp counted as one), the loss 3. Per-batch work (the SGD update, BN's
    per-batch divisions) is shared by 32 rows and left out."""
    widths = [n_inputs, *hidden, 1]
    dense = sum(6 * a * b + 2 * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    bn = 16 * ((n_inputs if input_bn else 0) + (sum(hidden) if hidden_bn else 0))
    return dense + bn + 4 * sum(hidden) + 3


def synthetic_sessions(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The study's inputs and Ueq for n simulated sessions (`bnapp synth`'s cohort)."""
    from bnapp.intake.simulator import simulate_cohort
    from bnapp.intake.units import STUDY_INPUTS, STUDY_TARGET

    frame = simulate_cohort(n, seed)
    return frame[list(STUDY_INPUTS)].to_numpy(float), frame[STUDY_TARGET].to_numpy(float)


def one_size(sessions: int, *, folds: int = FOLDS, epochs: int = EPOCHS) -> dict:
    """Train on `sessions` synthetic sessions in a new process: its time and peak RSS."""
    X, y = synthetic_sessions(sessions)
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sessions.npz"
        np.savez(path, X=X, y=y)
        del X, y
        out = subprocess.run([sys.executable, "-c", _ONE_SIZE, str(path), str(folds), str(epochs)],
                             env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"training {sessions} sessions failed: {out.stderr.strip()[-500:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    row_epochs = sessions * (folds - 1) / folds * folds * epochs  # every fold trains on the rest
    # cpu_seconds: the process's CPU time, start-up included; less at the mercy of other load
    return {"sessions": sessions, "epochs": epochs, "seconds": figures["seconds"],
            "cpu_seconds": figures["cpu_seconds"], "peak_rss_mb": figures["peak_rss_mb"],
            "row_epochs_per_second": row_epochs / figures["seconds"]}


def scale_benchmark(sizes: Sequence[int] = SCALE_SIZES, *, folds: int = FOLDS,
                    epochs: int = EPOCHS, log: Callable[[str], None] = print) -> list[dict]:
    flops = flops_per_row_epoch()
    log(f"study network (e2e), {folds}-fold CV x {epochs} epochs; {flops} FLOPs per row-epoch")
    results = []
    for n in sizes:
        r = one_size(n, folds=folds, epochs=epochs)
        log(f"{n:>10,} sessions: {r['seconds']:8.1f} s (CPU {r['cpu_seconds']:.1f} s), "
            f"peak RSS {r['peak_rss_mb']:7.0f} MB, "
            f"{r['row_epochs_per_second'] / 1e6:5.2f} M row-epochs/s "
            f"({r['row_epochs_per_second'] * flops / 1e9:4.1f} GFLOP/s)")
        results.append(r)
    return results
