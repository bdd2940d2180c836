"""The drill's Debian 12 guest: a base root file system (debootstrap) and a disk image.

Two cache levels under the drill cache (``$CRASHCART_DRILL_CACHE``, default ``<repo>/.drill``):

- ``base-<key>/rootfs``: ``debootstrap --variant=minbase`` of Debian 12 with systemd, udev,
  procps, the cloud kernel and kdump-tools' dependencies. kdump-tools itself is NOT
  installed: its ``.deb`` (and kexec-tools', makedumpfile's, the agent's python3) wait in a
  local apt repository inside the guest (``/var/lib/crashcart-drill/apt``, the only apt
  source), so that the component's own ``apt-get install`` step installs and configures them,
  offline, as it does on a Debian AMI (on the host side of preparation, see
  :mod:`crashcart.drill.hostphase`). The key hashes the package list, the
  mirror, the suite and the platform's boot configuration.
- ``prepared-<key>/``: the base plus the component document applied (see
  :mod:`crashcart.drill.prepare`) and the drill's own guest files (the component-step
  runner and its unit, :func:`guest_files`); the key adds the rendered document and them.

The disk is made with ``mkfs.ext4 -d rootfs`` (no loop mounts) and edited with debugfs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from crashcart.drill.paths import GUEST_DIR, cache_dir, cache_lock

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: Installed by debootstrap. The kdump-tools dependencies are here so that the component's
#: ``apt-get install`` of kdump-tools needs only the local repository's three packages.
BASE_PACKAGES: tuple[str, ...] = (
    "systemd-sysv",
    "udev",
    "procps",
    "kmod",
    "linux-image-cloud-amd64",
    "initramfs-tools",
    # kdump-tools / kexec-tools / makedumpfile dependencies
    "bsdextrautils",
    "busybox",
    "file",
    "linux-base",
    "ucf",
    "lsb-base",
    "debconf",
    "libelf1",
    "libdw1",
    "libbz2-1.0",
    "liblzo2-2",
    "libzstd1",
    "zlib1g",
    "liblzma5",
    "zstd",
    # the guest reaches the host's moto server (the agent's uploads)
    "ca-certificates",
    "curl",
)
#: The packages the component installs (its ``kdump_packages``): offered by the local apt
#: repository in the guest, not installed by the drill.
COMPONENT_PACKAGES: tuple[str, ...] = (
    "kdump-tools",
    "kexec-tools",
    "makedumpfile",
    # the crashcart agent's prerequisites (fragments/agent-prereqs-apt.sh)
    "python3",
    "python3-venv",
)
DISK_SIZE = "3G"
GUEST_LIB = "/usr/local/lib/crashcart-drill"
GUEST_STATE = "/var/lib/crashcart-drill"
LOCAL_REPO = f"{GUEST_STATE}/apt"
#: What the image's boot configuration starts with (as a Debian cloud image's
#: /etc/default/grub does): the serial console. The component adds its words to this.
PLATFORM_GRUB_DEFAULT = (
    "# crashcart drill guest: the platform's boot configuration (a Debian cloud image has\n"
    "# its console settings here); components add theirs in /etc/default/grub.d/*.cfg.\n"
    'GRUB_CMDLINE_LINUX="console=ttyS0,115200"\n'
    'GRUB_CMDLINE_LINUX_DEFAULT=""\n'
)


class ImageBuildError(RuntimeError):
    """The guest image could not be built (the message says which command failed)."""


def mirror() -> str:
    return os.environ.get("CRASHCART_DRILL_MIRROR", DEFAULT_MIRROR)


def guest_files() -> dict[str, tuple[bytes, int]]:
    """The drill's own files, written into each prepared disk: guest path -> (content, mode).

    (Not part of the base, so that changing them does not re-run debootstrap.)
    """
    return {
        f"{GUEST_LIB}/runner.sh": ((GUEST_DIR / "runner.sh").read_bytes(), 0o755),
        "/etc/systemd/system/crashcart-drill.service": (
            (GUEST_DIR / "crashcart-drill.service").read_bytes(),
            0o644,
        ),
    }


def base_key() -> str:
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            {
                "suite": SUITE,
                "mirror": mirror(),
                "packages": sorted(BASE_PACKAGES),
                "component_packages": sorted(COMPONENT_PACKAGES),
                "grub": PLATFORM_GRUB_DEFAULT,
                "initramfs": INITRAMFS_CONF,
                "version": 3,
            },
            sort_keys=True,
        ).encode()
    )
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class BaseImage:
    rootfs: Path
    kernel_release: str
    key: str
    build_seconds: float
    cached: bool


def _run(args: list[str], *, log: Path, env: dict[str, str] | None = None) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(args)}\n")
        out.flush()
        result = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ImageBuildError(
            f"{args[0]} failed (exit {result.returncode}); last lines of {log}:\n{tail}"
        )


def _chroot_env() -> dict[str, str]:
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C.UTF-8",
        "HOME": "/root",
    }


def _write_packages_index(repo: Path) -> None:
    """A flat apt repository index (``Packages``) for the .debs in ``repo``."""
    stanzas: list[str] = []
    for deb in sorted(repo.glob("*.deb")):
        control = subprocess.run(
            ["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True
        ).stdout.rstrip("\n")
        data = deb.read_bytes()
        stanzas.append(
            f"{control}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    (repo / "Packages").write_text("\n".join(stanzas))


def _kernel_release(rootfs: Path) -> str:
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise ImageBuildError(f"expected one kernel in {rootfs / 'boot'}, found {kernels}")
    return kernels[0].name.removeprefix("vmlinuz-")


def build_base(*, log: Path | None = None, force: bool = False) -> BaseImage:
    """The cached base root file system; built with debootstrap when missing (~2-3 min)."""
    key = base_key()
    with cache_lock(f"base-{key}"):
        return _build_base(key, log=log, force=force)


def _build_base(key: str, *, log: Path | None, force: bool) -> BaseImage:
    folder = cache_dir() / f"base-{key}"
    rootfs = folder / "rootfs"
    done = folder / "done.json"
    if done.exists() and rootfs.is_dir() and not force:
        info = json.loads(done.read_text())
        return BaseImage(rootfs, info["kernel_release"], key, info["build_seconds"], True)
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is not installed (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise ImageBuildError("building the drill guest needs root (debootstrap, chroot)")
    started = time.monotonic()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    build_log = log or folder / "build.log"
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            SUITE,
            str(rootfs),
            mirror(),
        ],
        log=build_log,
    )
    populate_local_repo(rootfs, log=build_log)
    _configure(rootfs)
    release = _kernel_release(rootfs)
    seconds = round(time.monotonic() - started, 1)
    done.write_text(json.dumps({"kernel_release": release, "build_seconds": seconds}))
    return BaseImage(rootfs, release, key, seconds, False)


def populate_local_repo(rootfs: Path, *, log: Path) -> None:
    """Download (not install) the component's packages and what they need beyond the base
    into the guest's local repository; make it the guest's only apt source."""
    env = _chroot_env()
    sources = rootfs / "etc/apt/sources.list"
    sources.write_text(f"deb {mirror()} {SUITE} main\n")
    shutil.copy("/etc/resolv.conf", rootfs / "etc/resolv.conf")
    try:
        _run(["chroot", str(rootfs), "apt-get", "clean"], log=log, env=env)
        _run(["chroot", str(rootfs), "apt-get", "update", "-q"], log=log, env=env)
        _run(
            [
                "chroot",
                str(rootfs),
                "apt-get",
                "install",
                "-y",
                "-q",
                "--download-only",
                "--no-install-recommends",
                *COMPONENT_PACKAGES,
            ],
            log=log,
            env=env,
        )
        repo = rootfs / LOCAL_REPO.lstrip("/")
        repo.mkdir(parents=True, exist_ok=True)
        for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            shutil.move(str(deb), repo / deb.name)
        found = {deb.name.split("_", 1)[0] for deb in repo.glob("*.deb")}
        missing = sorted(set(COMPONENT_PACKAGES) - found)
        if missing:
            raise ImageBuildError(f"could not download {missing} for the guest's local repository")
        _write_packages_index(repo)
    finally:
        sources.write_text(
            "# crashcart drill guest: offline; the only source is the local repository holding\n"
            "# the packages the component installs.\n"
            f"deb [trusted=yes] file:{LOCAL_REPO} ./\n"
        )
        (rootfs / "etc/resolv.conf").write_text("")
        for stale in (rootfs / "var/lib/apt/lists").glob("*_*"):
            stale.unlink()
    _run(["chroot", str(rootfs), "apt-get", "update", "-q"], log=log, env=env)
    _run(["chroot", str(rootfs), "apt-get", "clean"], log=log, env=env)


#: initramfs-tools in the guest: Debian's default ``MODULES=most`` (the image's main initramfs
#: is generated on the host, in the chroot of the preparation's host side, where ``dep``
#: cannot see the guest's hardware), compressed with zstd -1. kdump-tools builds the capture
#: kernel's initrd with ``MODULES=dep`` in the guest, at its first boot.
INITRAMFS_CONF = "# crashcart drill guest: quick to generate\nMODULES=most\nCOMPRESSLEVEL=1\n"


def _configure(rootfs: Path) -> None:
    (rootfs / "etc/hostname").write_text("crashcart-drill\n")
    (rootfs / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 crashcart-drill\n")
    (rootfs / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    (rootfs / "etc/default/grub").write_text(PLATFORM_GRUB_DEFAULT)
    (rootfs / "etc/initramfs-tools/conf.d/crashcart-drill").write_text(INITRAMFS_CONF)
    # root without a password on the serial console of a throw-away, offline guest
    subprocess.run(["chroot", str(rootfs), "passwd", "-d", "root"], check=True, capture_output=True)
    network = rootfs / "etc/systemd/network/20-drill.network"
    network.parent.mkdir(parents=True, exist_ok=True)
    network.write_text("[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n")
    (rootfs / GUEST_STATE.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (rootfs / GUEST_LIB.lstrip("/")).mkdir(parents=True, exist_ok=True)
    wants = rootfs / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "systemd-networkd.service"
    link.unlink(missing_ok=True)
    link.symlink_to("/lib/systemd/system/systemd-networkd.service")
    # No timers that wake apt or fstrim during a drill.
    for timer in (
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "fstrim.timer",
        "e2scrub_all.timer",
        "dpkg-db-backup.timer",
    ):
        (rootfs / "etc/systemd/system" / timer).unlink(missing_ok=True)
        (rootfs / "etc/systemd/system" / timer).symlink_to("/dev/null")


def make_disk(rootfs: Path, image: Path, *, log: Path) -> None:
    """``mkfs.ext4 -d rootfs image 3G`` (sparse file; no loop mount)."""
    image.unlink(missing_ok=True)
    _run(
        ["mkfs.ext4", "-q", "-F", "-L", "crashcart-root", "-d", str(rootfs), str(image), DISK_SIZE],
        log=log,
    )


def copy_disk(source: Path, target: Path) -> None:
    """A fresh, sparse copy of a disk image (each drill run boots its own copy)."""
    target.unlink(missing_ok=True)
    subprocess.run(
        ["cp", "--sparse=always", "--reflink=auto", str(source), str(target)], check=True
    )
