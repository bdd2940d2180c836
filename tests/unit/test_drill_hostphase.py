"""The host side of image preparation: which build steps run on the host, and the sandbox
they run in (``crashcart/drill/hostphase.py``, ``crashcart/drill/host/sandbox.sh``)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest

from crashcart.drill.component import parse_document
from crashcart.drill.hostphase import Overlay, code_lines, kernel_needs, split_build
from crashcart.drill.prepare import render_document


def _document(build_steps: str) -> str:
    return textwrap.dedent(
        """\
        name: split-test
        schemaVersion: 1.0
        phases:
          - name: build
            steps:
        {build}
          - name: validate
            steps:
              - name: Check
                action: ExecuteBash
                inputs:
                  commands:
                    - cat /proc/cmdline
        """
    ).format(build=textwrap.indent(textwrap.dedent(build_steps), "      "))


def _bash(name: str, *commands: str) -> str:
    lines = "\n".join(f"        - {command!r}" for command in commands)
    return f"- name: {name}\n  action: ExecuteBash\n  inputs:\n    commands:\n{lines}\n"


REBOOT = "- name: Restart\n  action: Reboot\n"


def _keys(steps: tuple[object, ...]) -> list[str]:
    return [step.key for step in steps]  # type: ignore[attr-defined]


def test_the_debian_document_installs_on_the_host_and_validates_in_the_guest() -> None:
    split = split_build(parse_document(render_document()))
    assert _keys(split.host) == ["build-01-EnableKdump", "build-02-InstallCrashcartAgent"]
    assert split.first_boot is not None and split.first_boot.key == "build-03-RebootToArmKdump"
    assert split.guest == () and split.reasons == {}


def test_steps_before_the_first_reboot_run_on_the_host_the_rest_in_the_guest() -> None:
    document = parse_document(
        _document(
            _bash("Install", "apt-get install -y kdump-tools", "systemctl enable kdump-tools")
            + _bash("Configure", "echo 'USE_KDUMP=1' > /etc/default/kdump-tools")
            + REBOOT
            + _bash("AfterReboot", "echo done")
        )
    )
    split = split_build(document)
    assert _keys(split.host) == ["build-01-Install", "build-02-Configure"]
    assert split.first_boot is not None and split.first_boot.key == "build-03-Restart"
    assert _keys(split.guest) == ["build-04-AfterReboot"]


def test_a_step_that_needs_the_kernel_and_everything_after_it_run_in_the_guest() -> None:
    document = parse_document(
        _document(
            _bash("Install", "apt-get install -y kdump-tools")
            + _bash("Headers", 'apt-get install -y "linux-headers-$(uname -r)"')
            + _bash("Configure", "echo ok")
            + REBOOT
        )
    )
    split = split_build(document)
    assert _keys(split.host) == ["build-01-Install"]
    assert split.first_boot is None  # the guest reboots itself
    assert _keys(split.guest) == ["build-02-Headers", "build-03-Configure", "build-04-Restart"]
    assert "uname" in split.reasons["build-02-Headers"]


def test_without_a_reboot_step_the_guest_runs_the_whole_build_phase() -> None:
    split = split_build(parse_document(_document(_bash("Install", "apt-get install -y x"))))
    assert split.host == () and split.first_boot is None
    assert _keys(split.guest) == ["build-01-Install"]
    assert "no Reboot" in split.reasons["build-01-Install"]


@pytest.mark.parametrize(
    ("script", "needs"),
    [
        ("uname -r", ["uname"]),
        ('release="$(uname -r)"', ["uname"]),
        ("sysctl --system", ["sysctl"]),
        ("sysctl -w kernel.unknown_nmi_panic=1", ["sysctl"]),
        ("/sbin/modprobe virtio_blk", ["modprobe"]),
        ("FOO=1 mount -t tmpfs none /mnt", ["mount"]),
        ("kexec -p /boot/vmlinuz", ["kexec"]),
        ("systemctl start kdump-tools", ["systemctl start"]),
        ("systemctl restart foo && echo", ["systemctl restart"]),
        ("systemctl enable --now kdump-tools", ["systemctl enable --now"]),
        ("cat /proc/cmdline", ["reads /proc/"]),
        ("[ -e /sys/kernel/kexec_crash_loaded ]", ["reads /sys/"]),
        ("if true; then dmesg | tail; fi", ["dmesg"]),
        # what a chroot can do
        ("systemctl enable kdump-tools.service", []),
        ("systemctl unmask kdump-tools.service", []),
        ("if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi", []),
        ("cat >/etc/sysctl.d/zz.conf <<'EOF'\nkernel.panic = 10\nEOF", []),
        ("for conf in /etc/sysctl.conf /etc/sysctl.d/*.conf; do :; done", []),
        ("neutralize_kexec_load_disabled", []),
        ("echo uname sysctl modprobe  # words, not commands", []),
        ("# sysctl -w kernel.panic=1", []),
        ("python3 - <<'PY'\nimport os\nos.uname()\nPY", []),
        ("apt-get install -y kexec-tools", []),
    ],
)
def test_kernel_needs(script: str, needs: list[str]) -> None:
    assert kernel_needs(script) == needs


def test_here_documents_and_comments_are_not_code() -> None:
    script = "cat >/x <<'EOF'\nuname -r\nEOF\necho after # uname\n  # mount\ntrue"
    assert code_lines(script) == ["cat >/x <<'EOF'", "echo after ", "  ", "true"]


# --- the sandbox (root: an overlay mount and a chroot) ---------------------------------------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0
    or shutil.which("unshare") is None
    or shutil.which("setpriv") is None
    or not Path("/bin/busybox").is_file(),
    reason="the sandbox needs root, unshare, setpriv and busybox-static (make test has them)",
)


@pytest.fixture
def overlay(tmp_path: Path) -> Overlay:
    """A tiny root file system (busybox) as the overlay's lower layer."""
    lower = tmp_path / "lower"
    for folder in ("bin", "proc", "dev", "run", "tmp", "etc", "usr/bin", "usr/sbin"):
        (lower / folder).mkdir(parents=True)
    shutil.copy("/bin/busybox", lower / "bin" / "busybox")
    for applet in ("sh", "cat", "echo", "grep", "ls", "env", "hostname", "mount", "bash"):
        (lower / "bin" / applet).symlink_to("busybox")
    (lower / "usr" / "bin" / "env").symlink_to("/bin/busybox")
    (lower / "etc" / "base-file").write_text("from the base\n")
    return Overlay.create(lower, tmp_path / "work")


def _run(overlay: Overlay, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        overlay.command("chroot", "/bin/sh", "-c", script),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_root
def test_the_sandbox_writes_only_the_upper_layer(overlay: Overlay) -> None:
    result = _run(overlay, "echo changed > /etc/base-file && echo new > /etc/new-file")
    assert result.returncode == 0, result.stderr
    assert (overlay.lower / "etc" / "base-file").read_text() == "from the base\n"
    assert (overlay.upper / "etc" / "base-file").read_text() == "changed\n"
    assert (overlay.upper / "etc" / "new-file").read_text() == "new\n"
    # nothing stays mounted on the host
    assert str(overlay.merged) not in Path("/proc/self/mounts").read_text()


@needs_root
def test_the_sandbox_cannot_touch_the_hosts_kernel(overlay: Overlay) -> None:
    # writes the value it already has: a broken sandbox would still change nothing
    script = "cat /proc/sys/kernel/panic > /proc/sys/kernel/panic; echo status=$?"
    result = _run(overlay, script)
    assert "status=1" in result.stdout, result.stdout + result.stderr
    assert "Read-only file system" in result.stderr
    status = _run(overlay, "grep CapBnd /proc/self/status").stdout.split()[-1]
    bounding = int(status, 16)
    for bit, name in ((16, "sys_module"), (21, "sys_admin"), (22, "sys_boot"), (25, "sys_time")):
        assert not bounding & (1 << bit), f"the sandbox keeps CAP_{name.upper()}"
    assert _run(overlay, "hostname sandboxed").returncode != 0  # no CAP_SYS_ADMIN
    assert _run(overlay, "ls /sys").stdout.strip() == ""  # no /sys
    interfaces = _run(overlay, "cat /proc/net/dev").stdout
    assert "lo:" in interfaces and "eth" not in interfaces  # no network
    assert sorted(_run(overlay, "ls /dev").stdout.split()) == sorted(
        [
            "fd",
            "full",
            "null",
            "pts",
            "random",
            "shm",
            "stderr",
            "stdin",
            "stdout",
            "urandom",
            "zero",
        ]
    )


@needs_root
def test_placed_files_are_in_the_image_before_anything_runs(overlay: Overlay) -> None:
    overlay.write("/usr/local/lib/crashcart-drill/steps/build-01-X.sh", "echo hi\n", mode=0o755)
    overlay.symlink("/etc/link", "/etc/base-file")
    result = _run(overlay, "cat /etc/link && sh /usr/local/lib/crashcart-drill/steps/build-01-X.sh")
    assert result.stdout == "from the base\nhi\n", result.stderr
    assert (
        oct((overlay.upper / "usr/local/lib/crashcart-drill/steps/build-01-X.sh").stat().st_mode)[
            -3:
        ]
        == "755"
    )


# --- the kdump initrd, built on the host (crashcart/drill/host/kdump-initrd.sh) --------------

KVER = "6.1.0-test"
#: A stand-in for kdump-tools' kernel hook: records what it was run with and what it saw.
FAKE_HOOK = """#!/bin/sh
echo "$1" > /var/tmp/hook-args
cat /usr/share/initramfs-tools/conf-hooks.d/zz-crashcart-drill-kdump > /var/tmp/conf-hook
for dir in $(echo "$PATH" | tr : ' '); do  # the first lsmod on PATH, as bash would run it
  if [ -x "$dir/lsmod" ]; then "$dir/lsmod" > /var/tmp/lsmod; break; fi
done
echo "an initrd for $1" > /var/lib/kdump/initrd.img-$1
"""


def _shell(overlay: Overlay) -> Path:
    """What the script needs of a shell in the tiny image (busybox has no bash applet)."""
    lower = overlay.lower
    for folder in ("usr/share/initramfs-tools/conf-hooks.d", "usr/local/sbin", "var/tmp"):
        (lower / folder).mkdir(parents=True, exist_ok=True)
    for applet in ("cp", "mkdir", "chmod", "rm", "tr"):
        (lower / "bin" / applet).symlink_to("busybox")
    (lower / "bin" / "bash").unlink()
    (lower / "bin" / "bash").write_text('#!/bin/sh\nexec /bin/sh "$@"\n')
    (lower / "bin" / "bash").chmod(0o755)
    return lower


def _kdump_tools(overlay: Overlay, *, use_kdump: str = "1", enabled: bool = True) -> None:
    """kdump-tools as the image would have it after the document's install step (faked)."""
    lower = _shell(overlay)
    (lower / "bin" / "systemctl").write_text(f"#!/bin/sh\nexit {0 if enabled else 1}\n")
    (lower / "bin" / "systemctl").chmod(0o755)
    # the host's modules, as kmod's lsmod in the chroot would show them (its /proc is the host's)
    (lower / "usr" / "sbin" / "lsmod").write_text("#!/bin/sh\necho scsi_dh_alua 20480 0\n")
    (lower / "usr" / "sbin" / "lsmod").chmod(0o755)
    overlay.write("/etc/kernel/postinst.d/kdump-tools", FAKE_HOOK, mode=0o755)
    overlay.write("/etc/default/kdump-tools", f"USE_KDUMP={use_kdump}\n")
    overlay.write("/etc/kdump/sysctl.conf", "vm.nr_hugepages=0\n")


@needs_root
def test_the_host_runs_kdump_tools_own_hook_with_what_the_guest_would_find(
    overlay: Overlay,
) -> None:
    from crashcart.drill import kdumpinitrd

    _kdump_tools(overlay)
    output = kdumpinitrd.build_on_host(overlay, KVER, progress=lambda _line: None)
    upper = overlay.upper
    assert (upper / f"var/lib/kdump/initrd.img-{KVER}").read_text() == f"an initrd for {KVER}\n"
    # what kdump-config load records before it looks for the initrd (else it rebuilds it)
    assert (upper / f"var/lib/kdump/latest_sysctls-{KVER}").read_text() == "vm.nr_hugepages=0\n"
    assert (upper / "var/tmp/hook-args").read_text() == f"{KVER}\n"
    conf_hook = (upper / "var/tmp/conf-hook").read_text()
    assert 'CONFDIR:-}" = /var/lib/kdump/initramfs-tools' in conf_hook  # kdump's initrd only
    assert f"FSTYPE={kdumpinitrd.GUEST_ROOT_FSTYPE}" in conf_hook
    modules = " ".join(kdumpinitrd.GUEST_DEP_MODULES)
    assert f"manual_add_modules {kdumpinitrd.GUEST_ROOT_FSTYPE} {modules};" in conf_hook
    assert (upper / "var/tmp/lsmod").read_text().split() == ["Module", "Size", "Used", "by"]
    # nothing of the answers stays in the image
    assert not (upper / "usr/share/initramfs-tools/conf-hooks.d/zz-crashcart-drill-kdump").exists()
    assert not (upper / "usr/local/sbin/lsmod").exists()
    assert not list((upper / "usr/local/lib/crashcart-drill/steps").glob("*"))
    assert output[-1].startswith("kdump-initrd: built /var/lib/kdump/initrd.img-")


@needs_root
@pytest.mark.parametrize(
    ("use_kdump", "enabled", "why"),
    [("0", True, "USE_KDUMP=0"), ("1", False, "kdump-tools.service is not enabled")],
)
def test_no_kdump_initrd_where_the_guest_would_build_none(
    overlay: Overlay, use_kdump: str, enabled: bool, why: str
) -> None:
    from crashcart.drill import kdumpinitrd

    _kdump_tools(overlay, use_kdump=use_kdump, enabled=enabled)
    output = kdumpinitrd.build_on_host(overlay, KVER, progress=lambda _line: None)
    assert why in output[-1] and "nothing to build" in output[-1]
    assert not (overlay.upper / "var/lib/kdump").exists()


@needs_root
def test_no_kdump_initrd_without_kdump_tools(overlay: Overlay) -> None:
    from crashcart.drill import kdumpinitrd

    _shell(overlay)
    output = kdumpinitrd.build_on_host(overlay, KVER, progress=lambda _line: None)
    assert output == ["kdump-initrd: kdump-tools is not installed: nothing to build"]


@needs_root
def test_a_failing_kdump_initrd_build_fails_preparation(overlay: Overlay) -> None:
    from crashcart.drill import kdumpinitrd
    from crashcart.drill.hostphase import HostStepError

    _kdump_tools(overlay)
    overlay.write("/etc/kernel/postinst.d/kdump-tools", "#!/bin/sh\necho no space\nexit 1\n", 0o755)
    with pytest.raises(HostStepError, match="no space"):
        kdumpinitrd.build_on_host(overlay, KVER, progress=lambda _line: None)
    assert not (overlay.upper / "usr/local/sbin/lsmod").exists()  # cleaned up all the same


def test_a_kdump_initrd_built_in_the_guest_after_all_is_recorded(tmp_path: Path) -> None:
    from crashcart.drill import kdumpinitrd

    (tmp_path / "mkfs.log").write_text("kdump-tools: Generating /var/lib/kdump/initrd.img-x\n")
    (tmp_path / "prepare-1.console.log").write_text(
        "[ 42.6] kdump-tools[193]: loaded kdump kernel.\n"
    )
    assert not kdumpinitrd.guest_rebuilt(tmp_path)
    (tmp_path / "prepare-2.console.log").write_text(
        "[ 48.0] kdump-tools[249]: kdump-tools: Generating /var/lib/kdump/initrd.img-6.1.0-50\n"
    )
    assert kdumpinitrd.guest_rebuilt(tmp_path)


# --- the kdump initrd, built on the host between the guest's boots (running-instance image) --


def _offline_disk(overlay: Overlay, tmp_path: Path) -> Path:
    """The tiny image as a guest's ext4 disk, as preparation makes it (mkfs.ext4 -d)."""
    from crashcart.drill.hostphase import make_disk

    disk = tmp_path / "disk.img"
    make_disk(overlay, disk, size="32M", log=tmp_path / "mkfs.log")
    return disk


needs_debugfs = pytest.mark.skipif(
    shutil.which("debugfs") is None or shutil.which("mkfs.ext4") is None,
    reason="needs e2fsprogs (debugfs, mkfs.ext4)",
)


@needs_root
@needs_debugfs
def test_between_boots_the_host_builds_the_initrd_into_the_offline_disk(
    overlay: Overlay, tmp_path: Path
) -> None:
    from crashcart.drill import diskfs, kdumpinitrd

    _kdump_tools(overlay)  # what the guest's first boot left: kdump-tools installed, enabled
    disk = _offline_disk(overlay, tmp_path)
    written = kdumpinitrd.build_between_boots(disk, KVER, tmp_path / "work", progress=print)
    initrd = f"/var/lib/kdump/initrd.img-{KVER}"
    assert initrd in written and "/var/lib/kdump" in written
    assert diskfs.read_file(disk, initrd) == f"an initrd for {KVER}\n".encode()
    sysctls = diskfs.read_file(disk, f"/var/lib/kdump/latest_sysctls-{KVER}")
    assert sysctls == b"vm.nr_hugepages=0\n"
    assert diskfs.read_file(disk, "/var/tmp/hook-args") == f"{KVER}\n".encode()  # the hook ran
    # nothing of the answers reaches the disk; the disk's own files are still there
    assert not diskfs.exists(disk, "/usr/local/sbin/lsmod")
    assert diskfs.list_dir(disk, "/usr/share/initramfs-tools/conf-hooks.d") == []
    assert diskfs.read_file(disk, "/etc/base-file") == b"from the base\n"
    assert not (tmp_path / "work" / "kdump-initrd-offline").exists()  # the copy is gone
    # the next reboot finds it there: nothing more to do
    assert kdumpinitrd.build_between_boots(disk, KVER, tmp_path / "work", progress=print) == []


@needs_root
@needs_debugfs
def test_between_boots_nothing_is_built_where_the_guest_would_build_none(
    overlay: Overlay, tmp_path: Path
) -> None:
    from crashcart.drill import diskfs, kdumpinitrd

    _kdump_tools(overlay, enabled=False)
    disk = _offline_disk(overlay, tmp_path)
    assert kdumpinitrd.build_between_boots(disk, KVER, tmp_path / "work", progress=print) == []
    assert not diskfs.exists(disk, "/var/lib/kdump")
    without = Overlay.create(overlay.lower, tmp_path / "bare")  # no kdump-tools at all
    bare = tmp_path / "bare-disk"
    bare.mkdir()
    assert (
        kdumpinitrd.build_between_boots(
            _offline_disk(without, bare), KVER, tmp_path / "work", progress=print
        )
        == []
    )


@needs_root
@needs_debugfs
def test_writing_back_refuses_what_is_not_an_addition(overlay: Overlay, tmp_path: Path) -> None:
    from crashcart.drill import kdumpinitrd
    from crashcart.drill.hostphase import HostStepError

    disk = _offline_disk(overlay, tmp_path)
    (overlay.upper / "etc").mkdir()
    os.mknod(overlay.upper / "etc" / "base-file", 0o600 | 0o020000, os.makedev(0, 0))  # whiteout
    with pytest.raises(HostStepError, match="/etc/base-file: neither a file"):
        kdumpinitrd.write_back(disk, overlay)
    (overlay.upper / "etc" / "base-file").unlink()
    (overlay.upper / "etc" / "owned").write_text("x\n")
    os.chown(overlay.upper / "etc" / "owned", 1000, 1000)
    with pytest.raises(HostStepError, match="/etc/owned: owned by 1000:1000"):
        kdumpinitrd.write_back(disk, overlay)


@needs_root
@needs_debugfs
def test_writing_back_refuses_to_replace_what_the_disk_has(
    overlay: Overlay, tmp_path: Path
) -> None:
    """A file the disk has, or a directory where the disk has a file, is refused before the
    disk is touched (debugfs would rewrite the existing inode's type)."""
    from crashcart.drill import diskfs, kdumpinitrd
    from crashcart.drill.hostphase import HostStepError

    disk = _offline_disk(overlay, tmp_path)
    (overlay.upper / "etc").mkdir()
    (overlay.upper / "etc" / "base-file").write_text("rewritten\n")
    with pytest.raises(HostStepError, match="/etc/base-file: the disk has it already"):
        kdumpinitrd.write_back(disk, overlay)
    (overlay.upper / "etc" / "base-file").unlink()
    (overlay.upper / "etc" / "base-file").mkdir()
    with pytest.raises(HostStepError, match="/etc/base-file: a directory where the disk has"):
        kdumpinitrd.write_back(disk, overlay)
    assert diskfs.read_file(disk, "/etc/base-file") == b"from the base\n"


@needs_root
@needs_debugfs
def test_writing_back_adds_directories_files_and_links_with_their_modes(
    overlay: Overlay, tmp_path: Path
) -> None:
    """A new directory may carry overlayfs' opaque mark (kernels before 5.14, some mount
    options): it is still an addition. A directory the disk has, marked opaque, is not."""
    from crashcart.drill import diskfs, kdumpinitrd
    from crashcart.drill.hostphase import HostStepError

    disk = _offline_disk(overlay, tmp_path)
    new = overlay.upper / "etc" / "added"
    new.mkdir(parents=True)
    os.chmod(new, 0o750)
    os.setxattr(new, "trusted.overlay.opaque", b"y")
    (new / "tool").write_text("#!/bin/sh\n")
    os.chmod(new / "tool", 0o755)
    os.symlink("tool", new / "link")
    written = kdumpinitrd.write_back(disk, overlay)
    assert written == ["/etc/added", "/etc/added/link", "/etc/added/tool"]
    copied = diskfs.copy_out(disk, "/etc/added", tmp_path / "out")
    assert copied is not None
    assert stat.S_IMODE(copied.stat().st_mode) == 0o750
    assert stat.S_IMODE((copied / "tool").stat().st_mode) == 0o755
    assert os.readlink(copied / "link") == "tool"
    os.setxattr(overlay.upper / "etc", "trusted.overlay.opaque", b"y")  # the disk's own
    with pytest.raises(HostStepError, match="/etc: a directory the build emptied"):
        kdumpinitrd.write_back(disk, overlay)


@needs_root
@needs_debugfs
def test_copying_out_fails_when_debugfs_could_not_copy_everything(
    overlay: Overlay, tmp_path: Path
) -> None:
    """debugfs exits 0 when rdump fails part way; the copy says so instead."""
    from crashcart.drill import diskfs

    disk = _offline_disk(overlay, tmp_path)
    destination = tmp_path / "out"
    destination.mkdir()
    (destination / "etc").write_text("in the way\n")
    with pytest.raises(diskfs.DiskError, match="rdump: File exists"):
        diskfs.copy_out(disk, "/etc", destination)


def test_the_boot_loop_runs_the_between_boots_work_after_each_reboot_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crashcart.drill import boot
    from crashcart.drill.qemu import Event

    calls: list[str] = []

    class FakeVm:
        exit_code = 0

        def __init__(self, events: list[str]) -> None:
            self.events = events

        def wait_for(self, _predicate: object, **kwargs: object) -> Event | None:
            on_event = kwargs["on_event"]
            for words in self.events:
                name, *rest = words.split()
                on_event(Event(name, tuple(rest), 0.0, words))  # type: ignore[operator]
            return Event("ready", (), 0.0, "ready") if self.events[-1] == "ready" else None

        def stop(self) -> None:
            pass

    boots = iter([["step-start build-01", "step-end build-01 0", "reboot build-02"], ["ready"]])

    def start(*_args: object, **kwargs: object) -> FakeVm:
        calls.append(f"boot {kwargs['label']}")
        return FakeVm(next(boots))

    monkeypatch.setattr(boot.diskfs, "recover", lambda _disk: None)
    monkeypatch.setattr(
        boot, "read_boot_config", lambda _disk, _folder: type("C", (), {"cmdline": ""})()
    )
    monkeypatch.setattr(boot, "start_guest", start)
    log = boot.BootLog.empty()
    boot.boot_until_ready(
        tmp_path / "disk.img",
        tmp_path,
        label="prepare",
        timeout=5,
        log=log,
        progress=lambda _line: None,
        between_boots=lambda disk: calls.append(f"between {disk.name}"),
    )
    assert calls == ["boot prepare-1", "between disk.img", "boot prepare-2"]
    assert log.ready and log.reboots == ["build-02"]
