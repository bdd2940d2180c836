# ruff: noqa: E501  (kernel log samples are quoted verbatim)
"""Helpers for the crash-dump tests: fake /proc, /sys and /var/crash trees, the agent runner,
the dump-arrival handler loader and kernel-log samples."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "crashcart" / "components" / "agent" / "crashcart-agent.py"
ARRIVAL_DIR = REPO / "crashcart" / "functions" / "dump_arrival"
AWS_CLI = Path(sys.executable).parent / "aws"
INSTANCE_ID = "i-0123456789abcdef0"
BUILD_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6"

#: A kernel log as kdump-tools saves it after an NMI panic on Debian 12 (6.1 cloud kernel):
#: CPU 1 spins in a test module with interrupts off; the NMI reaches it; it panics.
NMI_PANIC_DMESG = """\
[    0.000000] Linux version 6.1.0-27-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01)
[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-6.1.0-27-cloud-amd64 root=/dev/vda ro console=ttyS0 crashkernel=384M-:128M
[   41.204410] crashcart_hang: loading out-of-tree module taints kernel.
[   41.205001] crashcart_hang: spinning with interrupts off on cpu 1
[   85.100112] Uhhuh. NMI received for unknown reason 30 on CPU 0.
[   85.100113] Do you have a strange power saving mode enabled?
[   85.100114] Kernel panic - not syncing: NMI: Not continuing
[   85.100120] CPU: 1 PID: 412 Comm: insmod Tainted: G           O       6.1.0-27-cloud-amd64 #1  Debian 6.1.115-1
[   85.100121] Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   85.100122] Call Trace:
[   85.100123]  <NMI>
[   85.100124]  dump_stack_lvl+0x44/0x5c
[   85.100125]  panic+0x118/0x2ed
[   85.100126]  nmi_panic.cold+0xc/0xc
[   85.100127]  unknown_nmi_error.cold+0x40/0x4a
[   85.100128]  default_do_nmi+0x114/0x120
[   85.100129]  exc_nmi+0x110/0x140
[   85.100130]  end_repeat_nmi+0x16/0x67
[   85.100131] RIP: 0010:hang_spin+0x10/0x20 [crashcart_hang]
[   85.100132] Code: 90 90 90 90 eb fe 66 0f 1f 44 00 00
[   85.100133] RSP: 0018:ffffb1c2c0013e50 EFLAGS: 00000246
[   85.100134] RAX: 0000000000000000 RBX: 0000000000000000 RCX: 0000000000000000
[   85.100135]  </NMI>
[   85.100136]  <TASK>
[   85.100137]  hang_init+0x20/0x1000 [crashcart_hang]
[   85.100138]  ? hang_spin+0x5/0x20 [crashcart_hang]
[   85.100139]  do_one_initcall+0x41/0x200
[   85.100140]  do_init_module+0x4c/0x1f0
[   85.100141]  __do_sys_finit_module+0xac/0x120
[   85.100142]  do_syscall_64+0x58/0xc0
[   85.100143]  entry_SYSCALL_64_after_hwframe+0x64/0xce
[   85.100144]  </TASK>
[   85.100150] Kernel Offset: 0x1c000000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)
"""

HUNG_TASK_DMESG = """\
[  242.000001] INFO: task jbd2/vda1-8:187 blocked for more than 120 seconds.
[  242.000002]       Not tainted 6.1.0-27-cloud-amd64 #1 Debian 6.1.115-1
[  242.000003] "echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
[  242.000004] task:jbd2/vda1-8     state:D stack:0     pid:187   ppid:2      flags:0x00004000
[  242.000005] Call Trace:
[  242.000006]  <TASK>
[  242.000007]  __schedule+0x34d/0x9e0
[  242.000008]  schedule+0x5a/0xd0
[  242.000009]  io_schedule+0x42/0x70
[  242.000010]  </TASK>
[  242.000020] Kernel panic - not syncing: hung_task: blocked tasks
[  242.000021] CPU: 0 PID: 35 Comm: khungtaskd Not tainted 6.1.0-27-cloud-amd64 #1  Debian 6.1.115-1
[  242.000022] Call Trace:
[  242.000023]  <TASK>
[  242.000024]  dump_stack_lvl+0x44/0x5c
[  242.000025]  panic+0x118/0x2ed
[  242.000026]  watchdog.cold+0x5/0x5
[  242.000027]  kthread+0xd7/0x100
[  242.000028]  </TASK>
"""


def fake_host(
    root: Path,
    *,
    crash_loaded: str = "1",
    cmdline: str = "BOOT_IMAGE=/vmlinuz root=/dev/vda ro crashkernel=384M-:128M",
    kexec_load_disabled: str = "0",
    unknown_nmi_panic: str | None = "1",
    panic: str = "10",
    mem_total_kb: int = 1024 * 1024,
) -> dict[str, str]:
    """Fake /proc and /sys trees; the agent environment pointing at them."""
    proc = root / "proc"
    sysfs = root / "sys"
    kernel = proc / "sys" / "kernel"
    kernel.mkdir(parents=True)
    (sysfs / "kernel").mkdir(parents=True)
    (sysfs / "kernel" / "kexec_crash_loaded").write_text(crash_loaded + "\n")
    (proc / "cmdline").write_text(cmdline + "\n")
    (kernel / "kexec_load_disabled").write_text(kexec_load_disabled + "\n")
    if unknown_nmi_panic is not None:
        (kernel / "unknown_nmi_panic").write_text(unknown_nmi_panic + "\n")
    (kernel / "panic").write_text(panic + "\n")
    (kernel / "osrelease").write_text("6.1.0-27-cloud-amd64\n")
    (proc / "meminfo").write_text(f"MemTotal:       {mem_total_kb} kB\nMemFree:  1000 kB\n")
    desc = bytes.fromhex(BUILD_ID)
    notes = struct.pack("<III", 4, len(desc), 3) + b"GNU\0" + desc
    xen_note = struct.pack("<III", 4, 4, 1) + b"Xen\0" + b"abcd"
    (sysfs / "kernel" / "notes").write_bytes(xen_note + notes)
    crash = root / "crash"
    crash.mkdir(exist_ok=True)
    return {
        "CRASHCART_PROC": str(proc),
        "CRASHCART_SYS": str(sysfs),
        "CRASHCART_CRASH_DIR": str(crash),
        "CRASHCART_STATE_DIR": str(root / "state"),
        "CRASHCART_ARCH": "x86_64",
    }


def vmcore_bytes(kind: str = "flattened", size: int = 4096) -> bytes:
    """Bytes that look like a dump of ``kind`` (magic + VMCOREINFO + filler)."""
    magic = {"flattened": b"makedumpfile\0\0\0\0", "kdump-compressed": b"KDUMP   \x06\0\0\0"}[kind]
    info = f"OSRELEASE=6.1.0-27-cloud-amd64\nBUILD-ID={BUILD_ID}\nPAGESIZE=4096\n".encode()
    body = magic + b"\0" * 100 + info
    return body + bytes(range(256)) * ((size - len(body)) // 256 + 1)


def make_dump(
    crash_dir: Path,
    name: str,
    *,
    kind: str = "flattened",
    size: int = 4096,
    debian: bool = True,
    dmesg: str = NMI_PANIC_DMESG,
) -> Path:
    """A dump folder as kdump-tools (debian=True) or kdump.service writes it."""
    folder = crash_dir / name
    folder.mkdir(parents=True)
    if debian:
        (folder / f"dump.{name}").write_bytes(vmcore_bytes(kind, size)[:size])
        (folder / f"dmesg.{name}").write_text(dmesg)
    else:
        (folder / "vmcore").write_bytes(vmcore_bytes(kind, size)[:size])
        (folder / "vmcore-dmesg.txt").write_text(dmesg)
    return folder


def run_agent(
    env: dict[str, str], *args: str, endpoint: str | None = None, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    """Run the agent as the unit does, against ``endpoint`` (moto) instead of AWS."""
    full = dict(os.environ)
    full.update(
        {
            "CRASHCART_INSTANCE_ID": INSTANCE_ID,
            "CRASHCART_REGION": "eu-west-1",
            "CRASHCART_AWS": str(AWS_CLI),
            "CRASHCART_CLI_TIMEOUT": "60",
            "AWS_MAX_ATTEMPTS": "2",
        }
    )
    if endpoint:
        full["AWS_ENDPOINT_URL"] = endpoint
    full.update(env)
    return subprocess.run(
        [sys.executable, str(AGENT), *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def load_module(path: Path, name: str) -> ModuleType:
    """Import a script file (the agent, the symbol publisher) under a unique module name."""
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_arrival_handler() -> SimpleNamespace:
    """The names of the dump-arrival package the tests use, from the modules that own them."""
    from crashcart.functions.dump_arrival import adapter, events, handler, service, settings

    return SimpleNamespace(
        Adapter=adapter.Adapter,
        Settings=settings.Settings,
        BadEventError=events.BadEventError,
        parse_event=events.parse_event,
        parse_key=events.parse_key,
        parse_metadata_key=events.parse_metadata_key,
        process=service.process,
        build=handler.build,
        handler=handler.handler,
    )


def object_created_event(bucket: str, key: str) -> dict[str, Any]:
    """An EventBridge S3 "Object Created" event (as the rule delivers it)."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "111111111111",
        "time": "2026-11-26T05:30:00Z",
        "region": "eu-west-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 512, "etag": "abc", "sequencer": "00617F08299329D189"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "111111111111",
            "reason": "PutObject",
        },
    }


def metadata_document(instance_id: str = INSTANCE_ID, **extra: Any) -> bytes:
    doc = {
        "schema": 1,
        "instance_id": instance_id,
        "region": "eu-west-1",
        "dump_id": "202611260519",
        "kernel_release": "6.1.0-27-cloud-amd64",
        "build_id": BUILD_ID,
        "dump_time": "2026-11-26T05:19:00Z",
        "format": "flattened",
        "files": [
            {"name": "vmcore", "size": 4096, "sha256": "00", "format": "flattened"},
            {"name": "dmesg.txt", "size": 100, "sha256": "11"},
        ],
    }
    doc.update(extra)
    return json.dumps(doc).encode()
