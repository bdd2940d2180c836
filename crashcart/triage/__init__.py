"""Crash-dump triage: ``triage(vmcore, vmlinux) -> Report``, rendered as Markdown or JSON.

CLI: ``crashcart triage VMCORE --vmlinux PATH [--json]`` or
``python -m crashcart.triage VMCORE --vmlinux PATH [--json]``.
"""

from crashcart.triage.core import TriageError, detect_format, triage
from crashcart.triage.report import CpuStack, Report, render_markdown, to_json

__all__ = [
    "CpuStack",
    "Report",
    "TriageError",
    "detect_format",
    "render_markdown",
    "to_json",
    "triage",
]
