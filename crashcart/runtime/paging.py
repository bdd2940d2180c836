"""Paginated AWS calls (standard library only): the ``NextToken`` step every listing takes.

The functions list page by page themselves (each decides what a page holds, how many pages
it reads and what too many means); this is the one step they share: carry a response's
``NextToken`` into the next call's arguments, or say there is no next page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def next_page(response: Mapping[str, Any], arguments: dict[str, Any]) -> bool:
    """Point ``arguments`` at the page after ``response``; False when it was the last."""
    token = response.get("NextToken")
    if not token:
        return False
    arguments["NextToken"] = token
    return True
