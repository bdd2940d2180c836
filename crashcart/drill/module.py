"""Build the hung-CPU test module (``hang_module/crashcart_hang.c``) for the guest's kernel.

It is built on the host against ``/usr/src/linux-headers-<guest release>`` (Debian's
``linux-headers-<release>`` package, the same ABI as the guest's ``linux-image-<release>``;
the drill installs it with apt-get when it is missing and it runs as root) and cached per
kernel release and source hash.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from crashcart.drill.paths import HANG_MODULE_DIR, cache_dir


class ModuleBuildError(RuntimeError):
    """The test module could not be built."""


def headers_dir(release: str) -> Path:
    return Path("/usr/src") / f"linux-headers-{release}"


def _apt_install(package: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def ensure_headers(release: str) -> Path:
    path = headers_dir(release)
    if path.is_dir():
        return path
    package = f"linux-headers-{release}"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ModuleBuildError(f"{path} is missing: install the Debian package {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = _apt_install(package, env)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, check=False)
        result = _apt_install(package, env)
    if result.returncode != 0 or not path.is_dir():
        raise ModuleBuildError(f"apt-get install {package} failed: {result.stderr[-800:]}")
    return path


def hang_module_sources() -> list[Path]:
    """The module's source files (every file of ``hang_module/``), in name order."""
    return sorted(p for p in HANG_MODULE_DIR.iterdir() if p.is_file())


def build_hang_module(release: str) -> Path:
    """The path of ``crashcart_hang.ko`` built for ``release`` (cached)."""
    sources = hang_module_sources()
    digest = hashlib.sha256(release.encode())
    for source in sources:
        digest.update(source.name.encode() + source.read_bytes())
    target = cache_dir() / "modules" / f"{release}-{digest.hexdigest()[:12]}" / "crashcart_hang.ko"
    if target.exists():
        return target
    headers = ensure_headers(release)
    if shutil.which("make") is None or shutil.which("gcc") is None:
        raise ModuleBuildError("building the test module needs make and gcc")
    with tempfile.TemporaryDirectory() as tmp:
        for source in sources:
            shutil.copy(source, tmp)
        result = subprocess.run(
            ["make", "-s", "-C", str(headers), f"M={tmp}", "modules"],
            capture_output=True,
            text=True,
            check=False,
        )
        built = Path(tmp) / "crashcart_hang.ko"
        if result.returncode != 0 or not built.exists():
            raise ModuleBuildError(f"make failed: {result.stdout[-800:]}{result.stderr[-800:]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(built, target)
    return target
