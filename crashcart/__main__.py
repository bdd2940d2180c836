"""``python -m crashcart``: the ``crashcart`` command line."""

import sys

from crashcart.cli import main

sys.exit(main())
