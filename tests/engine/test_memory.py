"""Training memory is O(rows), not O(epochs x rows): the mini-batch orders are drawn inside the
compiled loop, so 200 epochs peak no higher than 10 on the same rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

_TRAIN = """
import json, sys
import numpy as np
from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol
from bnapp.engine.train import train_run
rng = np.random.default_rng(0)
X = rng.normal(70.0, 15.0, size=(int(sys.argv[1]), 5))
y = X @ np.array([0.1, 0.2, 0.5, 0.01, 0.02]) + rng.normal(size=len(X))
run = train_run(X, y, ArchSpec.study_e2e(), Protocol(folds=2, epochs=int(sys.argv[2]), lr=0.001),
                features=["a", "b", "c", "d", "e"])
assert len(run.folds[0].history["loss"]) == int(sys.argv[2])
# VmHWM, not ru_maxrss: after fork + exec Linux's ru_maxrss keeps the parent's (pytest's) peak
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"peak_kb": int(status["VmHWM"].split()[0])}))
"""


def _peak_rss_kb(rows: int, epochs: int) -> int:
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", _TRAIN, str(rows), str(epochs)], cwd=repo,
                         capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.splitlines()[-1])["peak_kb"]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads Linux's VmHWM")
def test_peak_memory_does_not_grow_with_epochs():
    # 40,000 rows x 2 folds: all 200 epochs' orders (as int64, the old way, with copies) add over 100 MB
    # to a ~200 MB process, far beyond the 10 % allowed here
    few, many = _peak_rss_kb(40_000, 10), _peak_rss_kb(40_000, 200)
    assert many < 1.10 * few, f"peak RSS {few / 1024:.0f} MB at 10 epochs, {many / 1024:.0f} MB at 200"
