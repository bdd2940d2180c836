"""The drill's files in the image: the step runner and its unit, every step of the component
document, the guest's offline wheelhouse and the hung-CPU test module.

Preparation (:mod:`crashcart.drill.prepare`) places them in the image's overlay before the
disk is made; :func:`queue_text` is also what a drill run writes for the runner's queue.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from crashcart.drill.agent import AGENT_ENABLED
from crashcart.drill.component import ComponentDocument, Step
from crashcart.drill.image import GUEST_LIB, GUEST_STATE, guest_files
from crashcart.drill.paths import cache_dir
from crashcart.drill.qemu import GuestError

#: The guest's Python (Debian 12): the wheels of the local wheelhouse are for it.
GUEST_PYTHON = "3.11"
WHEELHOUSE = f"{GUEST_STATE}/wheels"
_PIP_REQUIREMENT_RE = re.compile(r"pip install [^\n]*?'?([A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*)'?")


def pip_requirements(text: str) -> list[str]:
    """The pinned ``pip install`` requirements the document's steps run (e.g. awscli)."""
    return sorted(set(_PIP_REQUIREMENT_RE.findall(text)))


def wheelhouse(requirements: list[str], *, progress: Callable[[str], None] = print) -> list[Path]:
    """Wheels for ``requirements`` (and their dependencies) for the guest's Python, downloaded
    from the package index on the host once and cached: the guest's pip installs from them
    offline (its /etc/pip.conf says ``no-index`` + ``find-links``), as the guest's apt installs
    from the local repository."""
    if not requirements:
        return []
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    folder = cache_dir() / f"wheels-{digest}"
    done = folder / "done"
    if not done.exists():
        progress(f"  downloading wheels for the guest: {' '.join(requirements)}")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--disable-pip-version-check",
                "--only-binary=:all:",
                "--python-version",
                GUEST_PYTHON,
                "--platform",
                "manylinux2014_x86_64",
                "--implementation",
                "cp",
                "--abi",
                f"cp{GUEST_PYTHON.replace('.', '')}",
                "-d",
                str(folder),
                *requirements,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise GuestError(f"pip download {requirements} failed: {result.stderr[-600:]}")
        done.write_text("\n".join(requirements) + "\n")
    return sorted(folder.glob("*.whl"))


#: The hung-CPU test module's place in the image (restored guests cannot be handed files).
HANG_MODULE = f"{GUEST_STATE}/crashcart_hang.ko"
POLICY_RC_D = "/usr/sbin/policy-rc.d"


class FileWriter(Protocol):
    """Where the drill's files go: the image's overlay before the disk is made."""

    def write(self, guest_path: str, content: bytes | str, mode: int = 0o644) -> object: ...

    def mkdir(self, guest_path: str, mode: int = 0o755) -> object: ...

    def symlink(self, guest_path: str, target: str) -> object: ...


def install_steps(
    editor: FileWriter,
    document: ComponentDocument,
    text: str,
    *,
    hang_module: Path | None = None,
) -> None:
    """The drill's runner and unit, every step of the document, the wheelhouse and the
    hung-CPU test module into the image."""
    for path, (content, mode) in guest_files().items():
        editor.write(path, content, mode=mode)
    wheels = wheelhouse(pip_requirements(text))
    if wheels:
        editor.mkdir(WHEELHOUSE)
        for wheel in wheels:
            editor.write(f"{WHEELHOUSE}/{wheel.name}", wheel.read_bytes())
        editor.write(
            "/etc/pip.conf",
            "# crashcart drill guest: offline; pip installs from the local wheelhouse.\n"
            f"[global]\nno-index = true\nfind-links = {WHEELHOUSE}\n",
        )
    editor.symlink(
        "/etc/systemd/system/multi-user.target.wants/crashcart-drill.service",
        "/etc/systemd/system/crashcart-drill.service",
    )
    # DHCP before network-online.target (the agent orders itself after it).
    editor.mkdir("/etc/systemd/system/network-online.target.wants")
    editor.symlink(
        "/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service",
        "/lib/systemd/system/systemd-networkd-wait-online.service",
    )
    # While the image is prepared there is no metadata service and no moto: the crashcart
    # agent (if the document installs it) runs only where a drill run created the flag file
    # and gave it its settings (crashcart.drill.agent); its log goes to the serial console
    # too (the drill reads no journal).
    editor.mkdir("/etc/systemd/system/crashcart-agent.service.d")
    editor.write(
        "/etc/systemd/system/crashcart-agent.service.d/zz-crashcart-drill.conf",
        "# crashcart drill: only in a drill run (no metadata service, no moto before)\n"
        f"[Unit]\nConditionPathExists={AGENT_ENABLED}\n\n"
        "[Service]\nStandardOutput=journal+console\nStandardError=journal+console\n",
    )
    editor.mkdir(f"{GUEST_LIB}/steps")
    editor.write("/etc/crashcart-drill-component.yaml", text)
    for name, (step_text, step_mode) in step_files(document).items():
        editor.write(f"{GUEST_LIB}/steps/{name}", step_text, mode=step_mode)
    if hang_module is not None:
        editor.write(HANG_MODULE, hang_module.read_bytes())


def step_files(document: ComponentDocument) -> dict[str, tuple[str, int]]:
    """The runner's step files: ``<key>.sh`` (+ ``<key>.timeout``) or ``<key>.reboot``."""
    files: dict[str, tuple[str, int]] = {}
    for step in document.steps("build", "validate", "test"):
        if step.action == "Reboot":
            files[f"{step.key}.reboot"] = (f"{step.delay_seconds}\n", 0o644)
        else:
            files[f"{step.key}.sh"] = (step.script, 0o755)
            if step.timeout_seconds is not None:
                files[f"{step.key}.timeout"] = (f"{step.timeout_seconds}\n", 0o644)
    return files


def queue_text(steps: list[Step]) -> str:
    return "".join(f"{step.key}\n" for step in steps)
