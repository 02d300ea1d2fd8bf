"""`synth`: write a SYNTHETIC hemodialysis cohort from the two-pool urea kinetic simulator."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bnapp.cli import UserError

DEMO_SEED = 2024  # data/demo_cohort.csv = synth --n 200 --seed 2024
DEMO_N = 200


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth", help="write a synthetic cohort (simulated, not patient data)",
        description="Simulate N hemodialysis sessions with a two-pool urea kinetic model and "
                    "write Upre, U120, Upos, PP, UF, Ueq as CSV. The data are SYNTHETIC: no "
                    "patient's data went into them. The bundled demo cohort is "
                    f"--n {DEMO_N} --seed {DEMO_SEED}. See docs/demo-data.md.")
    parser.add_argument("--n", type=int, required=True, metavar="N", help="number of sessions")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="random seed; the same N and S give the same file (default 0)")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="CSV to write")
    parser.set_defaults(handler=_synth)


def write_csv_atomically(frame, out: Path) -> None:
    """Write `frame` to a temporary file beside `out`, then rename it: never a half-written file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            frame.to_csv(handle, index=False, float_format="%.1f", lineterminator="\n")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _synth(args: argparse.Namespace) -> int:
    from bnapp.intake.simulator import simulate_cohort

    if args.n < 1:
        raise UserError(f"--n must be at least 1 (got {args.n})")
    if args.seed < 0:
        raise UserError(f"--seed must be zero or positive (got {args.seed})")
    out = args.out
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: folder {out.parent} does not exist; create it first")
    if out.is_dir():
        raise UserError(f"cannot write {out}: it is a folder; give a file name such as cohort.csv")
    frame = simulate_cohort(args.n, args.seed)
    try:
        write_csv_atomically(frame, out)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from exc
    print(f"wrote {len(frame)} synthetic sessions (seed {args.seed}) to {out}")
    return 0
