"""crashcart: AWS CDK constructs for the EC2 kernel-hang diagnosis loop.

The public API, re-exported here. The constructs are loaded on first use, so that the
command-line tools (``crashcart triage``, ``crashcart check-permissions``) do not start the
CDK's jsii runtime they do not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag

if TYPE_CHECKING:
    from crashcart.constructs import *  # noqa: F403
    from crashcart.kdump import KdumpSettings

__all__ = ["ConfigurationError", "KdumpSettings", "OptInTag"]

_LAZY = {"KdumpSettings": "crashcart.kdump"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        constructs = importlib.import_module("crashcart.constructs")
        if name in getattr(constructs, "__all__", ()):
            return getattr(constructs, name)
        raise AttributeError(f"module 'crashcart' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
