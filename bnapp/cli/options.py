"""Command-line options shared by the commands that train one architecture, and their
progress bar."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from bnapp.cli import UserError
from bnapp.engine.model import ACTIVATIONS, INPUT_MODES, OUTPUT_ACTIVATIONS, ArchSpec


def add_arch_options(parser) -> None:
    parser.add_argument("--mode", choices=INPUT_MODES, default="raw", help="network input")
    parser.add_argument("--arch", "--hidden", dest="arch", default="6",
                        help="hidden layer widths, e.g. 6 or 6,6")
    parser.add_argument("--activation", choices=ACTIVATIONS, default="sigmoid")
    parser.add_argument("--output-activation", choices=OUTPUT_ACTIVATIONS, default="linear")
    parser.add_argument("--no-input-bn", action="store_true", help="no BN layer on the inputs")
    parser.add_argument("--no-hidden-bn", action="store_true", help="no BN after hidden layers")


def spec_from_args(args) -> ArchSpec:
    """The ArchSpec the options of add_arch_options describe; a bad value is a UserError."""
    try:
        hidden = tuple(int(part) for part in args.arch.split(","))
        return ArchSpec(hidden=hidden, activation=args.activation,
                        output_activation=args.output_activation, input_bn=not args.no_input_bn,
                        hidden_bn=not args.no_hidden_bn, input_mode=args.mode)
    except ValueError as exc:
        raise UserError(f"--arch {args.arch!r}: {exc} (give widths like 6 or 6,6)") from exc


@contextlib.contextmanager
def epoch_bar(label: str, protocol) -> Iterator[Callable[[float, str], None]]:
    """A tqdm bar on stderr counting the run's epochs (every model's), with epochs/s and the
    time left; yields the (fraction, message) progress callback that drives it."""
    from tqdm import tqdm

    total = protocol.epochs * protocol.n_models
    with tqdm(total=total, desc=label, unit="epoch", file=sys.stderr, dynamic_ncols=True,
              smoothing=0.1) as bar:

        def report(fraction: float, message: str = "") -> None:
            bar.update(max(0, round(fraction * total) - bar.n))
            if message:
                bar.set_postfix_str(message[:40], refresh=False)

        yield report
