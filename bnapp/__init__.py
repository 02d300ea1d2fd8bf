"""bnapp: what a BatchNormalization input layer learns from hemodialysis data."""

import sys

# part of every cache key: bump it when a change alters what a cached result would hold
__version__ = "0.3.0"



def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """warnings.showwarning for people: one plain line on stderr, not Python's
    `file:line: Category` with a line of source (the CLI and the app install it); above a
    progress bar, not inside it."""
    from tqdm import tqdm

    tqdm.write("warning: " + " ".join(str(message).split()), file=file or sys.stderr)
