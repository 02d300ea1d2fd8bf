"""What a fresh `python -m bnapp` process loads: the cached path must not pay for torch or numba.

Each command runs in a new interpreter (as a user's shell would start it) through a small
wrapper that reports which heavy packages ended up in sys.modules. Nothing here measures time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# packages that no cached result needs: the torch reference, the compiler, the analyses and
# charts, the cluster client, the dashboard
HEAVY = ("torch", "numba", "bnapp.engine.kernel", "bnapp.engine.reference", "scipy", "statsmodels", "altair",
         "vl_convert", "dask", "distributed", "streamlit")

_PROBE = textwrap.dedent(
    """
    import json, sys
    from bnapp.cli import build_parser, main
    heavy = json.loads(sys.argv[1])
    argv = sys.argv[2:]
    if argv:
        code = main(argv)
    else:  # registration only, as `--help` does
        build_parser()
        code = 0
    print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}))
    """
)


def _run(*argv: str) -> tuple[dict, str]:
    """Run `python -m bnapp ARGV` (no ARGV: only build the parser) in a fresh interpreter; its
    exit code and the heavy modules it loaded, and its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "BNAPP_DASK_SCHEDULER"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(HEAVY), *argv], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    *printed, report = proc.stdout.strip().splitlines()
    return json.loads(report), "\n".join(printed)


def test_registering_every_command_loads_no_heavy_package():
    report, _ = _run()
    assert report == {"code": 0, "loaded": []}


@pytest.mark.slow
def test_grid_from_the_cache_loads_neither_torch_nor_numba_and_writes_the_same_files(
        urea_csv, tmp_path):
    args = ["grid", "--data", str(urea_csv), "--folds", "2", "--epochs", "2", "--seed", "5"]
    first, first_out = _run(*args, "--out", str(tmp_path / "a"))
    # the first run trains: the compiler is loaded (which shows the probe sees real imports)
    assert first["code"] == 0 and "numba" in first["loaded"] and "torch" not in first["loaded"]
    assert "from the cache" not in first_out
    second, second_out = _run(*args, "--out", str(tmp_path / "b"))
    assert second == {"code": 0, "loaded": []}
    assert "480 configurations, done (from the cache)" in second_out
    for name in ("grid.csv", "best.csv"):
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()


@pytest.mark.slow
def test_train_from_the_cache_loads_no_heavy_package(urea_csv, tmp_path):
    args = ["train", "--data", str(urea_csv), "--folds", "2", "--epochs", "2", "--seed", "5"]
    first, _ = _run(*args, "--out", str(tmp_path / "a"))
    assert first["code"] == 0 and "numba" in first["loaded"]
    second, _ = _run(*args, "--out", str(tmp_path / "b"))
    assert second == {"code": 0, "loaded": []}
    assert (tmp_path / "b" / "folds.csv").read_bytes() == (tmp_path / "a" / "folds.csv").read_bytes()
