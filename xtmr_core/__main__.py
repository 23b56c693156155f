"""``python -m xtmr_core``: the command line."""

import sys

from xtmr_core.cli import main

sys.exit(main())
