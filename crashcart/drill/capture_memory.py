"""What the drill guest's capture kernel needed, against what the crashed kernel reserved.

The crash-dump component installs a capture-memory hook (``fragments/
capture-memory-install.sh``) that writes ``capture-memory.txt`` into the dump's folder while
kdump saves the dump. The figures are read here the way the crashcart agent reads them on an
instance (its :func:`capture_memory`, loaded from ``components/agent/crashcart-agent.py``:
one parser for the file, whether it is shipped to S3 or read off the drill's disk), and the
reservation comes from the crashed kernel's own boot log in the saved dmesg, else from the
``crashkernel=`` on its command line and the guest's RAM.
"""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from crashcart.components.render import AGENT_DIR
from crashcart.crashkernel_tiers import reservation_bytes

KIB = 1024
MIB = 1024 * 1024


@cache
def agent_module() -> ModuleType:
    """The crashcart agent (a single file installed on instances), loaded as a module."""
    path = AGENT_DIR / "crashcart-agent.py"
    spec = importlib.util.spec_from_file_location("crashcart_agent_for_drill", path)
    if spec is None or spec.loader is None:  # pragma: no cover - the file ships with crashcart
        raise ImportError(f"cannot load the crashcart agent from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reserved_kb_from_cmdline(cmdline: str, ram_mib: int) -> int | None:
    """The reservation a ``crashkernel=`` on ``cmdline`` makes on a machine of ``ram_mib``.

    The kernel picks the range holding the machine's RAM (start inclusive, end exclusive);
    no range holding it: no reservation (None).
    """
    match = re.search(r"(?:^|\s)crashkernel=(\S+)", cmdline)
    if not match:
        return None
    return reservation_bytes(match.group(1), ram_mib * MIB) // KIB or None


def analyse(dump_dir: Path, *, dmesg_text: str, cmdline: str, ram_mib: int) -> dict[str, Any]:
    """Reserved against used, in MiB, for the dump in ``dump_dir``.

    :returns: ``{"file": bool, "reserved_mib", "reserved_from", "mem_total_mib",
        "used_mib", "margin_mib", "available_min_mib", "makedumpfile_peak_mib", "samples",
        "final"}``; only ``file`` (False) and the reservation when the hook wrote nothing.
    """
    agent = agent_module()
    reserved_kb = agent.reserved_kb_from_dmesg(dmesg_text)
    reserved_from = "the crashed kernel's boot log"
    if reserved_kb is None:
        reserved_kb = reserved_kb_from_cmdline(cmdline, ram_mib)
        reserved_from = f"crashkernel= on the command line and {ram_mib} MiB of RAM"
    figures = agent.capture_memory(dump_dir, reserved_kb)
    result: dict[str, Any] = {
        "file": figures is not None,
        "reserved_mib": None if reserved_kb is None else round(reserved_kb / KIB, 1),
        "reserved_from": reserved_from,
    }
    if figures is None:
        return result
    result.update(
        mem_total_mib=round(figures["mem_total_kb"] / KIB, 1),
        used_mib=round(figures["used_kb"] / KIB, 1),
        margin_mib=None if "margin_kb" not in figures else round(figures["margin_kb"] / KIB, 1),
        available_min_mib=round(figures["mem_available_min_kb"] / KIB, 1),
        makedumpfile_peak_mib=round(figures.get("makedumpfile_vmhwm_kb", 0) / KIB, 1),
        samples=figures.get("samples", 0),
        final=bool(figures.get("final", 0)),
    )
    return result


def summary(figures: dict[str, Any]) -> str:
    """One line for the drill's stage list."""
    if not figures.get("file"):
        return (
            f"no capture-memory.txt in the dump folder (reserved "
            f"{figures.get('reserved_mib')} MiB, from {figures.get('reserved_from')})"
        )
    return (
        f"capture kernel: reserved {figures['reserved_mib']} MiB "
        f"({figures['reserved_from']}), MemTotal {figures['mem_total_mib']} MiB, used at most "
        f"{figures['used_mib']} MiB (makedumpfile peak RSS {figures['makedumpfile_peak_mib']} "
        f"MiB), margin {figures['margin_mib']} MiB; {figures['samples']} samples"
    )
