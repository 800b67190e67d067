"""``python -m uld_explorer.cli ...``: the same as the ``uld-explorer`` command."""

import sys

from . import main

sys.exit(main())
