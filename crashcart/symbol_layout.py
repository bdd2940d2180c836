"""Where debug symbols live in the debug-symbol store: the key layout, without the CDK.

The store (:class:`crashcart.constructs.debug_symbol_store.DebugSymbolStore`) holds one
folder per kernel build, named by the kernel's GNU build id (lowercase hex, 40 to 128
digits: what VMCOREINFO's ``BUILD-ID``, ``/sys/kernel/notes`` and the crashcart agent's
``metadata.json`` ``build_id`` say)::

    symbols/<build id>/vmlinux         the debug vmlinux (ELF with DWARF) of that build
    symbols/<build id>/metadata.json   what was published, by whom (written after vmlinux)

This module has no CDK import, so runtime code (a triage job) can use it; the on-instance
publisher (``components/symbols/crashcart-publish-symbols.py``) is standalone and writes the
same layout (a test holds the two together).
"""

from __future__ import annotations

import re

from crashcart.errors import ConfigurationError

__all__ = [
    "METADATA_NAME",
    "SYMBOLS_PREFIX",
    "VMLINUX_NAME",
    "metadata_key",
    "normalize_build_id",
    "symbol_key",
]

#: Key prefix of every symbol object.
SYMBOLS_PREFIX = "symbols/"
#: The debug vmlinux's object name inside a build id's folder.
VMLINUX_NAME = "vmlinux"
#: The metadata object's name inside a build id's folder (written last).
METADATA_NAME = "metadata.json"

_BUILD_ID = re.compile(r"^[0-9a-fA-F]{40,128}\Z")


def normalize_build_id(build_id: str) -> str:
    """``build_id`` in lowercase; ConfigurationError (a ValueError) unless it is 40-128 hex
    digits in whole bytes (a GNU build id: SHA-1 is 40 digits, the longest the linker makes
    is 128)."""
    if not isinstance(build_id, str) or not _BUILD_ID.match(build_id) or len(build_id) % 2:
        raise ConfigurationError(
            f"build id {build_id!r} is not a GNU build id: give 40 to 128 hexadecimal digits "
            "in whole bytes (e.g. the 40-digit SHA-1 id of VMCOREINFO's BUILD-ID or "
            "metadata.json's build_id)"
        )
    return build_id.lower()


def symbol_key(build_id: str, name: str = VMLINUX_NAME) -> str:
    """The key of one symbol object: ``symbols/<build id>/<name>`` (``vmlinux`` by default).

    :param name: ``"vmlinux"`` or ``"metadata.json"``.
    """
    if name not in (VMLINUX_NAME, METADATA_NAME):
        raise ConfigurationError(
            f"symbol object {name!r}: the store holds {VMLINUX_NAME!r} and {METADATA_NAME!r} "
            "per build id, nothing else"
        )
    return f"{SYMBOLS_PREFIX}{normalize_build_id(build_id)}/{name}"


def metadata_key(build_id: str) -> str:
    """The key of a build id's ``metadata.json``."""
    return symbol_key(build_id, METADATA_NAME)
