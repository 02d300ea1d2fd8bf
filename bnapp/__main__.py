import sys

from bnapp.cli import main

sys.exit(main())
