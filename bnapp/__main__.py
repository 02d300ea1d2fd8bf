"""`python -m bnapp`: the command line (bnapp.cli)."""

import sys

from bnapp.cli import main

sys.exit(main())
