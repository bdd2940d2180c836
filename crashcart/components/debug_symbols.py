"""Render the crashcart debug-symbols component document (one per Linux family).

The document (``templates/debug-symbols.yaml``) has one phase, build, with three steps:
install the running kernel's debug package (the family's commands from
:data:`crashcart.components.families.FAMILIES`), publish its vmlinux with
``symbols/crashcart-publish-symbols.py`` (embedded as a quoted heredoc, like the agent's
files), and remove what the install added. The store's bucket name is the component
parameter ``BucketName`` (:data:`BUCKET_PARAMETER`), given by the recipe::

    from crashcart.components.debug_symbols import render_debug_symbols
    text = render_debug_symbols("debian-12")

Windows has no such document: Windows dumps are read with WinDbg and Microsoft's public
symbol server.
"""

from __future__ import annotations

import hashlib
import json

from crashcart.components.families import DebugSymbolsInfo
from crashcart.components.render import COMPONENTS_DIR, TEMPLATES_DIR, _substitute, family_info
from crashcart.errors import ConfigurationError

__all__ = [
    "BUCKET_PARAMETER",
    "PHASE_SET",
    "PUBLISHER",
    "TEMPLATE",
    "debug_symbols_info",
    "render_debug_symbols",
]

#: The key of the document in ``KdumpImagePipeline.component_documents``.
PHASE_SET = "debug-symbols"
#: The component parameter that carries the store's bucket name.
BUCKET_PARAMETER = "BucketName"
TEMPLATE = TEMPLATES_DIR / "debug-symbols.yaml"
#: The on-instance publisher (Python 3.9+ standard library), embedded in the document.
PUBLISHER = COMPONENTS_DIR / "symbols" / "crashcart-publish-symbols.py"
#: Where the steps keep their state (package lists, the publisher); removed at the end.
STATE_DIR = "/var/lib/crashcart/debug-symbols-bake"


def debug_symbols_info(family: str) -> DebugSymbolsInfo:
    """The family's :class:`DebugSymbolsInfo`; ConfigurationError where there is none."""
    info = family_info(family)
    if info.debug_symbols is None:
        raise ConfigurationError(
            f"{family}: debug symbols are published for Linux families only; Windows crash "
            "dumps are read with WinDbg, which fetches symbols from Microsoft's public "
            "symbol server (leave debug_symbols unset)"
        )
    return info.debug_symbols


def _publisher_lines() -> str:
    """The publisher as a quoted heredoc written to ``$publisher``."""
    content = PUBLISHER.read_text(encoding="utf-8")
    if not content.endswith("\n"):
        content += "\n"
    delimiter = f"CRASHCART_SYMBOLS_{hashlib.sha256(content.encode()).hexdigest()[:12]}_EOF"
    return f"cat >\"$publisher\" <<'{delimiter}'\n{content}{delimiter}"


def render_debug_symbols(family: str) -> str:
    """The debug-symbols component document of ``family`` (YAML text)."""
    info = family_info(family)
    symbols = debug_symbols_info(family)
    description = (
        f"crashcart: publish the debug vmlinux of the AMI's kernel ({info.label}) to the "
        "debug-symbol store by build id, then remove the debug package"
    )
    if symbols.unverified:
        description += f". UNVERIFIED: {symbols.unverified}"
    fields = {
        "FAMILY": family,
        "DESCRIPTION": json.dumps(description),
        "STATE_DIR": STATE_DIR,
        "LIST_PACKAGES": symbols.list_packages,
        "INSTALL": symbols.install,
        "REMOVE": symbols.remove,
        "VMLINUX_PATH": symbols.vmlinux_path.replace("{release}", "${release}"),
        "PUBLISHER": _publisher_lines(),
    }
    text = TEMPLATE.read_text(encoding="utf-8")
    return _substitute(text, fields, None, []).rstrip("\n") + "\n"
