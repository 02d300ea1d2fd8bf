"""`python -m bnapp`: the command line (bnapp.cli), its warnings one plain line each."""

import sys
import warnings

from bnapp import show_warning
from bnapp.cli import main

warnings.showwarning = show_warning
sys.exit(main())
