"""Triage the drill's dump with ``crashcart.triage`` and the guest kernel's debug vmlinux.

The debug vmlinux comes from Debian's ``linux-image-<release>-dbg`` package (283 MB .deb):
``apt-get download`` it, extract only ``./usr/lib/debug/boot/vmlinux-<release>`` (~590 MB)
with ``dpkg-deb --fsys-tarfile | tar -x``, keep it in the drill cache
(``debug/vmlinux-<release>``) and delete the .deb. ``$CRASHCART_DRILL_VMLINUX`` points at an
existing one instead; ``--no-debug-vmlinux`` triages from the dump's own log only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from crashcart.drill.paths import cache_dir

HUNG_FUNCTION = "crashcart_hang_spin"
#: One download at a time: triage waits for a prefetch in progress rather than repeat it.
_VMLINUX_LOCK = threading.Lock()


class VmlinuxError(RuntimeError):
    pass


def debug_vmlinux(release: str, *, progress: Callable[[str], None] = print) -> Path:
    """The debug vmlinux of ``release`` (downloaded and extracted once, then cached)."""
    configured = os.environ.get("CRASHCART_DRILL_VMLINUX")
    if configured:
        return Path(configured)
    target = cache_dir() / "debug" / f"vmlinux-{release}"
    if target.is_file():
        return target
    with _VMLINUX_LOCK:
        if target.is_file():  # a prefetch got it meanwhile
            return target
        return _download_vmlinux(release, target, progress)


def prefetch_debug_vmlinux(release: str, *, progress: Callable[[str], None] = print) -> None:
    """Start getting the debug vmlinux in the background when it is not cached (a fresh
    machine): the download overlaps the guest's emulated first boot instead of waiting for
    the first triage. A failure here is left to that triage to report."""
    if os.environ.get("CRASHCART_DRILL_VMLINUX"):
        return
    if (cache_dir() / "debug" / f"vmlinux-{release}").is_file():
        return

    def fetch() -> None:
        try:
            debug_vmlinux(release, progress=progress)
        except (VmlinuxError, OSError) as error:
            progress(f"  prefetching the debug vmlinux failed (triage retries): {error}")

    threading.Thread(target=fetch, name="crashcart-drill-vmlinux", daemon=True).start()


def _download_vmlinux(release: str, target: Path, progress: Callable[[str], None]) -> Path:
    package = f"linux-image-{release}-dbg"
    progress(f"  downloading {package} (~283 MB) for the debug vmlinux (cached afterwards)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        download = subprocess.run(
            ["apt-get", "download", package], cwd=tmp, capture_output=True, text=True, check=False
        )
        debs = list(Path(tmp).glob("*.deb"))
        if download.returncode != 0 or not debs:
            raise VmlinuxError(f"apt-get download {package} failed: {download.stderr[-500:]}")
        member = f"./usr/lib/debug/boot/vmlinux-{release}"
        with subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE
        ) as deb:
            extract = subprocess.run(
                ["tar", "-x", "-C", tmp, member],
                stdin=deb.stdout,
                capture_output=True,
                text=True,
                check=False,
            )
        extracted = Path(tmp) / member
        if extract.returncode != 0 or not extracted.is_file():
            raise VmlinuxError(f"extracting {member} failed: {extract.stderr[-500:]}")
        shutil.move(str(extracted), target)
    return target


def triage_dump(
    result: Any, *, release: str | None = None, progress: Callable[[str], None] = print
) -> dict[str, Any] | None:
    """Run triage on the scenario's dump; records a ``triage`` stage on ``result``."""
    try:
        from crashcart.triage.core import triage
    except ImportError as error:
        result.stage("triage", True, f"skipped: crashcart.triage not importable ({error})")
        return None
    dump_dir = Path(result.dump_dir)
    vmcores = sorted(dump_dir.glob("dump.*"))
    if not vmcores:
        result.fail("triage", f"no vmcore in {dump_dir}")
        return None
    vmlinux: Path | None = None
    if os.environ.get("CRASHCART_DRILL_NO_DEBUG_VMLINUX") != "1":
        try:
            vmlinux = debug_vmlinux(release or _release_of(vmcores[0]), progress=progress)
        except VmlinuxError as error:
            progress(f"  no debug vmlinux ({error}); triage from the dump's log only")
    try:
        report = triage(vmcores[0], vmlinux)
    except Exception as error:
        result.fail("triage", f"triage raised {type(error).__name__}: {error}")
        return None
    data = asdict(report)
    (Path(result.workdir) / "triage.json").write_text(json.dumps(data, indent=2))
    stacks = [data.get("crashing_cpu"), *list(data.get("other_cpus") or [])]
    hung_cpus = sorted(
        stack["cpu"]
        for stack in stacks
        if stack and any(HUNG_FUNCTION in frame for frame in stack.get("frames", []))
    )
    summary = {
        "panic_message": data.get("panic_message"),
        "reason": data.get("reason"),
        "kernel_release": data.get("kernel_release"),
        "vmlinux": str(vmlinux) if vmlinux else None,
        "crashing_cpu": (data.get("crashing_cpu") or {}).get("cpu"),
        "cpus_in_" + HUNG_FUNCTION: hung_cpus,
        "missing": data.get("missing"),
        "elapsed_seconds": data.get("elapsed_seconds"),
    }
    message = data.get("panic_message") or ""
    if "NMI" not in message:
        result.fail("triage", f"triage did not name the NMI panic: panic_message={message!r}")
        return summary
    if result.scenario == "hung-cpus" and not hung_cpus:
        result.fail("triage", f"triage shows {HUNG_FUNCTION} on no CPU's stack")
        return summary
    detail = f"panic: {message!r}, reason {data.get('reason')}"
    if hung_cpus:
        detail += f"; {HUNG_FUNCTION} on CPU(s) {hung_cpus}"
    result.stage("triage", True, detail, data.get("elapsed_seconds"))
    progress(f"  triage: {detail}")
    return summary


def _release_of(vmcore: Path) -> str:
    from crashcart.triage.core import read_vmcoreinfo

    release = read_vmcoreinfo(vmcore).get("OSRELEASE")
    if not release:
        raise VmlinuxError(f"{vmcore}: no OSRELEASE in VMCOREINFO")
    return release
