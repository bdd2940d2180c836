"""``python -m crashcart.triage VMCORE [--vmlinux PATH] [--json]``."""

from __future__ import annotations

import sys

from crashcart.triage.cli import main

if __name__ == "__main__":
    sys.exit(main())
