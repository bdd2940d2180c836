"""crashcart: AWS CDK constructs for the EC2 kernel-hang diagnosis loop.

The public API, re-exported here. The constructs are loaded on first use, so that the
command-line tools (``crashcart triage``, ``crashcart check-permissions``) do not start the
CDK's jsii runtime they do not need.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag

if TYPE_CHECKING:
    from crashcart.constructs import *  # noqa: F403
    from crashcart.kdump import KdumpSettings, WindowsCrashDumpSettings

__all__ = ["ConfigurationError", "KdumpSettings", "OptInTag", "WindowsCrashDumpSettings"]


def _quiet_jsii() -> None:
    """Silence jsii's Node version banners unless the user has set the variables.

    The constructs start aws-cdk-lib's jsii runtime, which prints a large banner on stderr
    on every import when Node is end-of-life (or deprecated, or untested) for jsii. That
    banner is about the CDK's own toolchain, says nothing about crashcart, and buries the
    output of ``cdk synth``. The variables are read by the Node process when it starts, so
    they must be set before the first ``import aws_cdk``; one the user set (even to an empty
    string, to see the banner again) is left alone. This cannot help when ``aws_cdk`` was
    imported before ``crashcart``: set the variables in the shell then (see README).
    """
    defaults = {
        # A comma-separated list of Node major versions whose end-of-life banner is muted.
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": ",".join(
            str(major) for major in (*range(14, 22), 23, 25)
        ),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)


_quiet_jsii()

_LAZY = {"KdumpSettings": "crashcart.kdump", "WindowsCrashDumpSettings": "crashcart.kdump"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        constructs = importlib.import_module("crashcart.constructs")
        if name in getattr(constructs, "__all__", ()):
            return getattr(constructs, name)
        raise AttributeError(f"module 'crashcart' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
