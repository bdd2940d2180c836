"""``python -m crashcart.drill``."""

from crashcart.drill.cli import main

raise SystemExit(main())
