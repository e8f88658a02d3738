"""`python -m swaramd`: the same as the `swaramd` console script."""

import sys

from swaramd.cli import main

sys.exit(main())
