"""Crash-dump settings baked into crashcart images: one typed, validated value per platform.

:class:`KdumpSettings` is what the Linux component documents apply (kdump / kdump-tools, the
crashkernel reservation, the panic sysctls); :class:`WindowsCrashDumpSettings` is what the
capture-only Windows documents apply (CrashControl registry values, page file).

Behaviour changes that come with these settings (they are deliberate; know them before you
bake an image):

- ``kernel.unknown_nmi_panic=1`` (always set: it is the point of crashcart) turns *any* NMI
  the kernel cannot attribute into a panic, not only ``SendDiagnosticInterrupt``. Profilers
  and perf counters on instance sizes that expose the PMU, or a hardware error reported as an
  unknown NMI, will now crash the instance (and produce a dump) instead of logging
  "Uhhuh. NMI received for unknown reason".
- ``kernel.panic_on_oops=1`` (``panic_on_oops``, default on): an oops panics instead of
  killing the task and limping on. kdump-tools (Debian / Ubuntu) sets this by default
  through ``KDUMP_SYSCTL``; crashcart sets it explicitly on every Linux family so that the
  behaviour is the same everywhere, and lets you turn it off.
- ``kernel.panic=<N>`` (``panic_reboot_seconds``): if kdump is *not* armed when the panic
  happens, the kernel reboots after N seconds instead of hanging forever (0 would hang).
- ``kernel.softlockup_panic`` / ``kernel.hung_task_panic`` (off by default): when on, a
  soft lockup (a CPU stuck in kernel mode for ~20 s) or a task blocked in D state for
  ``hung_task_timeout_secs`` (120 s) panics the machine by itself, giving a dump without
  waiting for a status-check alarm. They can fire on a merely overloaded or I/O-starved
  instance (a stalled EBS volume), so they are opt-in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from crashcart.errors import ConfigurationError

#: The crashkernel syntax, shown in every crashkernel error.
CRASHKERNEL_SYNTAX = (
    "crashkernel=<size>[@<offset>] or crashkernel=<start>-[<end>]:<size>[,<start>-[<end>]:"
    "<size>...][@<offset>], sizes with a K, M or G suffix, ranges in ascending order "
    "(start inclusive, end exclusive, only the last range open-ended), e.g. '256M' or "
    "'1G-4G:192M,4G-64G:256M,64G-:512M'"
)

_SIZE = r"(\d+)([KMG])"
_SIZE_RE = re.compile(rf"^{_SIZE}\Z")
_RANGE_RE = re.compile(rf"^{_SIZE}-(?:{_SIZE})?:{_SIZE}\Z")
_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3}

#: makedumpfile compression flags by name.
COMPRESSION_FLAGS: dict[str, str] = {"lzo": "-l", "zlib": "-c", "snappy": "-p", "zstd": "-z"}

Compression = Literal["lzo", "zlib", "snappy", "zstd", "none"]


def _bytes(number: str, unit: str) -> int:
    return int(number) * _UNITS[unit]


def _crashkernel_error(value: str, problem: str) -> ConfigurationError:
    return ConfigurationError(
        f"invalid crashkernel {value!r}: {problem}. Expected {CRASHKERNEL_SYNTAX}"
    )


def parse_crashkernel(value: str) -> list[tuple[int, int | None, int]]:
    """Validate a crashkernel value (without the ``crashkernel=`` prefix).

    :returns: the reservation as ``[(start_bytes, end_bytes_or_None, size_bytes), ...]``; a
        plain size is returned as one open range starting at 0.
    :raises ConfigurationError: with the expected syntax when the value is malformed.
    """
    if not isinstance(value, str) or not value:
        raise _crashkernel_error(str(value), "empty value")
    if value.startswith("crashkernel="):
        raise _crashkernel_error(value, "give the value without the 'crashkernel=' prefix")
    body, at, offset = value.partition("@")
    if at and not _SIZE_RE.match(offset):
        raise _crashkernel_error(value, f"offset {offset!r} is not a size like 16M")
    if ":" not in body:
        if "-" in body:
            raise _crashkernel_error(value, f"range {body!r} is not <start>-[<end>]:<size>")
        match = _SIZE_RE.match(body)
        if not match:
            raise _crashkernel_error(value, f"{body!r} is not a size like 256M")
        size = _bytes(match.group(1), match.group(2))
        if size == 0:
            raise _crashkernel_error(value, "a reservation of 0 reserves nothing")
        return [(0, None, size)]
    ranges: list[tuple[int, int | None, int]] = []
    for index, part in enumerate(body.split(",")):
        match = _RANGE_RE.match(part)
        if not match:
            raise _crashkernel_error(value, f"range {part!r} is not <start>-[<end>]:<size>")
        start = _bytes(match.group(1), match.group(2))
        end = _bytes(match.group(3), match.group(4)) if match.group(3) else None
        size = _bytes(match.group(5), match.group(6))
        if end is not None and end <= start:
            raise _crashkernel_error(value, f"range {part!r} ends before it starts")
        if size == 0:
            raise _crashkernel_error(value, f"range {part!r} reserves 0")
        if ranges:
            previous_end = ranges[-1][1]
            if previous_end is None:
                raise _crashkernel_error(
                    value, f"range {part!r} follows an open-ended range (only the last may be)"
                )
            if start < previous_end:
                raise _crashkernel_error(
                    value, f"range {part!r} overlaps or precedes range {index} (not ascending)"
                )
        ranges.append((start, end, size))
    return ranges


@dataclass(frozen=True, kw_only=True)
class KdumpSettings:
    """How kdump is armed on a Linux image. Every field is validated at construction.

    :param crashkernel: memory reserved for the capture kernel, as the kernel's
        ``crashkernel=`` value (without the prefix). Default: None — the documented tiers of
        the image's family and architecture (:mod:`crashcart.crashkernel_tiers`), e.g.
        ``"768M-4G:192M,4G-64G:256M,64G-:512M"`` (RHEL 9's x86_64 tiers, first range from
        768M so that "1 GiB" instance types still get a reservation) on x86_64 and
        ``"768M-4G:256M,4G-64G:320M,64G-:576M"`` on arm64. A value you give wins everywhere.
    :param dump_level: makedumpfile ``-d`` page filter (0-31). Default: 31 (drop zero,
        cache, user and free pages: the smallest dump that still has all kernel data).
    :param compression: makedumpfile compression. Default: ``"lzo"`` (``-l``), fast and
        read by crash, drgn and makedumpfile everywhere. ``zstd`` needs a makedumpfile built
        with it.
    :param panic_reboot_seconds: ``kernel.panic``: seconds before a panicked kernel with
        no capture kernel reboots. Default: 10. Must be at least 1 (0 hangs forever).
    :param panic_on_oops: ``kernel.panic_on_oops``. Default: True (what kdump-tools sets).
    :param softlockup_panic: ``kernel.softlockup_panic``. Default: False.
    :param hung_task_panic: ``kernel.hung_task_panic``. Default: False.
    :param min_free_space_mib: the validate and test phases require this much free space
        in ``/var/crash``. Default: 1024.
    """

    crashkernel: str | None = None
    dump_level: int = 31
    compression: Compression = "lzo"
    panic_reboot_seconds: int = 10
    panic_on_oops: bool = True
    softlockup_panic: bool = False
    hung_task_panic: bool = False
    min_free_space_mib: int = 1024

    def __post_init__(self) -> None:
        if self.crashkernel is not None:
            parse_crashkernel(self.crashkernel)
        if isinstance(self.dump_level, bool) or not 0 <= self.dump_level <= 31:
            raise ConfigurationError(
                f"dump_level {self.dump_level!r} is not a makedumpfile -d level: use 0-31 "
                "(31 drops zero, cache, user and free pages)"
            )
        if self.compression not in (*COMPRESSION_FLAGS, "none"):
            raise ConfigurationError(
                f"compression {self.compression!r} is not one of "
                f"{', '.join((*COMPRESSION_FLAGS, 'none'))}"
            )
        if isinstance(self.panic_reboot_seconds, bool) or not (
            1 <= self.panic_reboot_seconds <= 3600
        ):
            raise ConfigurationError(
                f"panic_reboot_seconds {self.panic_reboot_seconds!r}: use 1-3600 seconds; 0 "
                "would leave a panicked instance without a capture kernel hanging forever"
            )
        if isinstance(self.min_free_space_mib, bool) or self.min_free_space_mib < 0:
            raise ConfigurationError(
                f"min_free_space_mib {self.min_free_space_mib!r} must be 0 or more"
            )

    @property
    def makedumpfile_args(self) -> str:
        """The makedumpfile arguments, e.g. ``-l -d 31``."""
        flag = COMPRESSION_FLAGS.get(self.compression)
        return f"{flag} -d {self.dump_level}" if flag else f"-d {self.dump_level}"

    @property
    def sysctls(self) -> dict[str, int]:
        """The sysctls crashcart writes (and the validate phase checks), in file order."""
        return {
            "kernel.unknown_nmi_panic": 1,
            "kernel.panic": self.panic_reboot_seconds,
            "kernel.panic_on_oops": int(self.panic_on_oops),
            "kernel.softlockup_panic": int(self.softlockup_panic),
            "kernel.hung_task_panic": int(self.hung_task_panic),
        }


#: Windows ``CrashDumpEnabled`` values by name.
WINDOWS_DUMP_TYPES: dict[str, int] = {"complete": 1, "kernel": 2, "small": 3, "automatic": 7}

_WINDOWS_PATH_RE = re.compile(r"^(%SystemRoot%|[A-Za-z]:)(\\[^<>:\"/|?*\r\n]+)+\Z")


@dataclass(frozen=True, kw_only=True)
class WindowsCrashDumpSettings:
    """Crash-dump settings for the capture-only Windows images.

    On Windows Server 2012 and later an NMI always bug-checks (stop code 0x80); these
    settings decide what is written and whether the instance comes back.

    :param dump_type: ``CrashDumpEnabled``: ``complete`` (1), ``kernel`` (2), ``small`` (3)
        or ``automatic`` (7). Default: ``"kernel"`` (kernel memory: what a hang analysis
        needs, a fraction of RAM).
    :param auto_reboot: ``AutoReboot``. Default: True (the instance restarts after the dump).
    :param dump_file: ``DumpFile``. Default: ``%SystemRoot%\\MEMORY.DMP``.
    :param page_file_mib: the page file on C: in MiB, or None for a system-managed page
        file. Default: None. A kernel dump needs a page file (or a dedicated dump file)
        large enough to hold it.
    """

    dump_type: Literal["complete", "kernel", "small", "automatic"] = "kernel"
    auto_reboot: bool = True
    dump_file: str = "%SystemRoot%\\MEMORY.DMP"
    page_file_mib: int | None = None

    def __post_init__(self) -> None:
        if self.dump_type not in WINDOWS_DUMP_TYPES:
            raise ConfigurationError(
                f"dump_type {self.dump_type!r} is not one of {', '.join(WINDOWS_DUMP_TYPES)}"
            )
        if not _WINDOWS_PATH_RE.match(self.dump_file) or "'" in self.dump_file:
            raise ConfigurationError(
                f"dump_file {self.dump_file!r} is not a Windows file path like "
                "%SystemRoot%\\MEMORY.DMP or D:\\dumps\\MEMORY.DMP"
            )
        if self.page_file_mib is not None and (
            isinstance(self.page_file_mib, bool) or not 256 <= self.page_file_mib <= 1_048_576
        ):
            raise ConfigurationError(
                f"page_file_mib {self.page_file_mib!r}: use None (system-managed) or "
                "256-1048576 MiB"
            )

    @property
    def crash_dump_enabled(self) -> int:
        """The ``CrashDumpEnabled`` registry value."""
        return WINDOWS_DUMP_TYPES[self.dump_type]
