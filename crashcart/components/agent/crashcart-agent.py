#!/usr/bin/python3
# ruff: noqa: UP017, S310  (runs on Python 3.9: no datetime.UTC; urlopen only reaches the
# IMDS endpoint, whose scheme Config checks is http)
"""crashcart agent: attest that kdump is armed, and ship crash dumps to S3.

Why one module: it is installed on instances as a single executable file (by the image
components and the arming document) and runs with the system's Python 3.9 and boto3 only,
so it cannot import a package of its own.

Installed by the crashcart Image Builder components (see MANIFEST) and run by
crashcart-agent.service at boot and hourly by crashcart-agent.timer:

  crashcart-agent run       attest, then ship (what the unit runs)
  crashcart-agent attest    attest only (--print: print, do not tag)
  crashcart-agent ship      ship only
  crashcart-agent gate      exit 3 while this instance's Auto Scaling target lifecycle state
                            is Terminated (a crashcart hold keeps it for its dump), else 0

attest  checks the capture kernel is loaded (/sys/kernel/kexec_crash_loaded), the panic
        sysctls (kernel.unknown_nmi_panic on x86_64), kernel.kexec_load_disabled = 0,
        crashkernel= on the kernel command line, free space in the dump target against the
        instance's memory; records kernel release and build id; publishes the result as the
        instance's own tag ``crashcart:kdump-attestation`` = ``armed <UTC time>`` or
        ``not-armed <UTC time> <reasons>``.
gate    run by systemd before a workload's cluster agent (kubelet, ecs; drop-in
        crashcart-hold-gate.conf as ExecStartPre): after the post-dump reboot of an instance
        its group is terminating, the node must not rejoin its cluster. Reads IMDS
        ``autoscaling/target-lifecycle-state`` once; not in a group (404) or IMDS not
        answering: 0 (a gate that cannot tell must not keep a healthy node out).
ship    uploads each dump folder under /var/crash not yet shipped: the vmcore (as ``vmcore``),
        the kernel log (as ``dmesg.txt``), then a generated ``metadata.json`` (written last:
        its arrival means the dump is complete) to
        s3://<bucket>/dumps/<role id>:<instance id>/<dump id>/ (with
        CRASHCART_DUMP_LAYOUT=account (or the SSM parameter /crashcart/dump-layout set to
        "account", as an organisation's member stack does), for a central bucket:
        s3://<bucket>/dumps/<account id>/<role id>:<instance id>/<dump id>/, the account
        from the instance identity document), every object with
        ``If-None-Match: *`` (never overwrite), large files as multipart uploads. A folder
        is marked shipped (.crashcart-shipped) only after metadata.json is stored; only
        shipped folders are ever deleted, keeping the newest CRASHCART_KEEP_SHIPPED.
        metadata.json's ``capture_memory`` holds, as numbers (kB), what the capture kernel
        had and used while it saved the dump (the component's capture-memory hook writes
        capture-memory.txt into the folder) against the crashed kernel's reservation.

Python 3.9+ standard library; AWS calls through the AWS CLI (``aws``; needs conditional
writes: AWS CLI v2 >= 2.18 or v1 >= 1.34). IMDSv2 only. Every path and endpoint can be
overridden by environment variables (tests point it at fake trees and a local S3).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ATTESTATION_TAG_KEY = "crashcart:kdump-attestation"
SHIPPED_MARKER = ".crashcart-shipped"
PROGRESS_FILE = ".crashcart-progress"
TAG_VALUE_LIMIT = 256
_TAG_SAFE = re.compile(r"[^A-Za-z0-9 _.:/=+\-@]")
_DUMP_ID_SAFE = re.compile(r"[^A-Za-z0-9._-]")
MIB = 1024 * 1024


class AgentError(Exception):
    """A step failed; the message says which and why."""


class Config:
    """Settings from the environment (read when the agent starts, not at import)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = Path(env.get("CRASHCART_PROC", "/proc"))
        self.sys = Path(env.get("CRASHCART_SYS", "/sys"))
        self.crash_dir = Path(env.get("CRASHCART_CRASH_DIR", "/var/crash"))
        self.state_dir = Path(env.get("CRASHCART_STATE_DIR", "/var/lib/crashcart"))
        self.tmp_dir = env.get("CRASHCART_TMP_DIR") or None
        self.imds = env.get("CRASHCART_IMDS_ENDPOINT", "http://169.254.169.254").rstrip("/")
        if not self.imds.startswith(("http://", "https://")):
            raise AgentError("CRASHCART_IMDS_ENDPOINT must be an http(s) URL")
        self.instance_id = env.get("CRASHCART_INSTANCE_ID") or None
        self.region = env.get("CRASHCART_REGION") or None
        self.bucket = env.get("CRASHCART_BUCKET") or None
        self.parameter = env.get("CRASHCART_PARAMETER_NAME", "/crashcart/dump-bucket")
        self.tag_key = env.get("CRASHCART_ATTESTATION_TAG_KEY", ATTESTATION_TAG_KEY)
        self.aws = env.get("CRASHCART_AWS", "aws")
        self.keep_shipped = int(env.get("CRASHCART_KEEP_SHIPPED", "2"))
        self.part_size = int(env.get("CRASHCART_PART_SIZE", str(64 * MIB)))
        self.single_put_max = int(env.get("CRASHCART_SINGLE_PUT_MAX", str(64 * MIB)))
        self.space_ratio = float(env.get("CRASHCART_DUMP_SPACE_RATIO", "0.25"))
        self.cli_timeout = int(env.get("CRASHCART_CLI_TIMEOUT", "1800"))
        self.arch = env.get("CRASHCART_ARCH") or platform.machine()
        #: "instance" (the account's own bucket) or "account" (a central bucket: the key
        #: starts with the instance's account id). Unset: the layout parameter says, read
        #: with the bucket name (a member stack of an organisation sets it to "account");
        #: without it, "instance".
        self.layout = env.get("CRASHCART_DUMP_LAYOUT") or None
        self.layout_parameter = env.get("CRASHCART_LAYOUT_PARAMETER_NAME", "/crashcart/dump-layout")
        self.account_id = env.get("CRASHCART_ACCOUNT_ID") or None
        if self.layout is not None:
            check_layout(self.layout, "CRASHCART_DUMP_LAYOUT")
        if self.part_size < 5 * MIB:
            raise AgentError("CRASHCART_PART_SIZE must be at least 5 MiB (S3 minimum part)")
        if self.keep_shipped < 0:
            raise AgentError("CRASHCART_KEEP_SHIPPED must be 0 or more")


def log(message: str) -> None:
    print(f"crashcart-agent: {message}", file=sys.stderr, flush=True)


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


# --------------------------------------------------------------------------- IMDSv2


def imds_read(config: Config, path: str, *, ttl: int, timeout: float) -> str:
    """One IMDSv2 read: a session token (``ttl`` seconds), then ``latest/<path>``."""
    token_request = urllib.request.Request(
        f"{config.imds}/latest/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)},
    )
    with urllib.request.urlopen(token_request, timeout=timeout) as response:
        token = response.read().decode()
    request = urllib.request.Request(
        f"{config.imds}/latest/{path}",
        headers={"X-aws-ec2-metadata-token": token},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return str(response.read().decode().strip())


def imds_get(config: Config, path: str, root: str = "meta-data") -> str:
    """A value from the instance metadata service, with an IMDSv2 session token."""
    last = "no attempt"
    for attempt in range(5):
        try:
            return imds_read(config, f"{root}/{path}", ttl=300, timeout=5)
        except (urllib.error.URLError, OSError) as error:
            last = str(error)
            time.sleep(min(2**attempt, 10))
    raise AgentError(f"instance metadata {path}: {last}")


#: Target lifecycle states in which the instance is on its way out of its group.
# aws-assumption: asg-target-lifecycle-state-imds
LEAVING_STATES = frozenset({"Terminated", "Warmed:Terminated"})
GATE_CLOSED = 3


def target_lifecycle_state(config: Config) -> str | None:
    """The Auto Scaling target lifecycle state; None when not in a group or IMDS is silent."""
    try:
        return imds_read(config, "meta-data/autoscaling/target-lifecycle-state", ttl=60, timeout=2)
    except urllib.error.HTTPError as error:
        if error.code != 404:
            log(f"gate: target lifecycle state unavailable ({error}); letting the service start")
        return None
    except (urllib.error.URLError, OSError) as error:
        log(f"gate: instance metadata not answering ({error}); letting the service start")
        return None


def gate(config: Config) -> int:
    """GATE_CLOSED while the instance's group is terminating it (a held node), else 0."""
    state = target_lifecycle_state(config)
    if state in LEAVING_STATES:
        log(
            f"gate: target lifecycle state is {state}: this node is held for its crash dump "
            "and must not rejoin its cluster; the service stays stopped"
        )
        return GATE_CLOSED
    return 0


def identity(config: Config) -> tuple[str, str]:
    instance_id = config.instance_id or imds_get(config, "instance-id")
    region = config.region or imds_get(config, "placement/region")
    return instance_id, region


# --------------------------------------------------------------------------- AWS CLI


def aws(config: Config, region: str, *args: str, input_json: bool = True) -> dict[str, Any]:
    """Run one AWS CLI command; its JSON output (or {}); AgentError with the CLI's words."""
    env = dict(os.environ)
    env.setdefault("AWS_RETRY_MODE", "standard")
    env.setdefault("AWS_MAX_ATTEMPTS", "6")
    env.setdefault("AWS_STS_REGIONAL_ENDPOINTS", "regional")
    env.setdefault("AWS_EC2_METADATA_V1_DISABLED", "true")
    command = [config.aws, "--region", region, "--output", "json", *args]
    try:
        done = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=config.cli_timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise AgentError(f"aws {' '.join(args[:2])}: {error}") from None
    if done.returncode != 0:
        raise AgentError(f"aws {' '.join(args[:2])}: {done.stderr.strip()[-600:]}")
    out = done.stdout.strip()
    return json.loads(out) if out and input_json else {}


def is_precondition_failed(error: AgentError) -> bool:
    text = str(error)
    return "PreconditionFailed" in text or "(412)" in text


# --------------------------------------------------------------------------- attest


def build_id_from_notes(data: bytes) -> str | None:
    """The GNU build id from /sys/kernel/notes (a sequence of ELF notes)."""
    offset = 0
    while offset + 12 <= len(data):
        namesz, descsz, kind = (
            int.from_bytes(data[offset + i : offset + i + 4], "little") for i in (0, 4, 8)
        )
        name_start = offset + 12
        desc_start = name_start + ((namesz + 3) & ~3)
        name = data[name_start : name_start + namesz].rstrip(b"\0")
        desc = data[desc_start : desc_start + descsz]
        if kind == 3 and name == b"GNU":
            return desc.hex()
        offset = desc_start + ((descsz + 3) & ~3)
        if namesz == 0 and descsz == 0:
            break
    return None


def attest(config: Config) -> dict[str, Any]:
    """Check whether kdump is armed; return the facts and the failed checks."""
    reasons: list[str] = []
    warnings: list[str] = []
    loaded = read_text(config.sys / "kernel" / "kexec_crash_loaded")
    if loaded != "1":
        reasons.append("capture-kernel-not-loaded")
    cmdline = read_text(config.proc / "cmdline") or ""
    crashkernel = next((w for w in cmdline.split() if w.startswith("crashkernel=")), None)
    if crashkernel is None:
        reasons.append("no-crashkernel")
    sysctl = config.proc / "sys" / "kernel"
    disabled = read_text(sysctl / "kexec_load_disabled")
    if disabled not in (None, "0"):
        reasons.append(f"kexec_load_disabled={disabled}")
    nmi_panic = read_text(sysctl / "unknown_nmi_panic")
    if config.arch in ("x86_64", "amd64"):
        if nmi_panic != "1":
            reasons.append(f"unknown_nmi_panic={nmi_panic if nmi_panic is not None else 'absent'}")
    else:
        warnings.append(f"unknown_nmi_panic not checked on {config.arch} (unverified path)")
    panic = read_text(sysctl / "panic")
    if panic == "0":
        warnings.append("kernel.panic=0: if the capture kernel fails the instance hangs")
    release = read_text(sysctl / "osrelease")
    try:
        build_id = build_id_from_notes((config.sys / "kernel" / "notes").read_bytes())
    except OSError:
        build_id = None
    mem_total = 0
    for line in (read_text(config.proc / "meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            mem_total = int(line.split()[1]) * 1024
    free = None
    try:
        stats = os.statvfs(config.crash_dir)
        free = stats.f_bavail * stats.f_frsize
    except OSError:
        reasons.append("no-dump-dir")
    need = int(mem_total * config.space_ratio)
    if free is not None and mem_total and free < need:
        reasons.append(f"low-dump-space free={free // MIB}M need={need // MIB}M")
    return {
        "armed": not reasons,
        "reasons": reasons,
        "warnings": warnings,
        "checked_at": utc_now(),
        "kernel_release": release,
        "build_id": build_id,
        "crashkernel": crashkernel,
        "kexec_crash_loaded": loaded,
        "kexec_load_disabled": disabled,
        "unknown_nmi_panic": nmi_panic,
        "panic": panic,
        "mem_total_bytes": mem_total,
        "dump_dir_free_bytes": free,
    }


def tag_value(result: dict[str, Any]) -> str:
    if result["armed"]:
        value = f"armed {result['checked_at']}"
    else:
        value = f"not-armed {result['checked_at']} " + " ".join(result["reasons"])
    return _TAG_SAFE.sub("_", value)[:TAG_VALUE_LIMIT]


def publish_attestation(config: Config, result: dict[str, Any]) -> None:
    instance_id, region = identity(config)
    tags = [{"Key": config.tag_key, "Value": tag_value(result)}]
    aws(
        config,
        region,
        "ec2",
        "create-tags",
        "--resources",
        instance_id,
        "--tags",
        json.dumps(tags),
        input_json=False,
    )
    try:
        config.state_dir.mkdir(parents=True, exist_ok=True)
        (config.state_dir / "attestation.json").write_text(json.dumps(result, indent=2) + "\n")
    except OSError as error:
        log(f"could not keep a local copy of the attestation: {error}")


# --------------------------------------------------------------------------- ship


def dump_format(path: Path) -> str:
    """kdump-compressed, flattened (makedumpfile -F), elf, or unknown - from the magic."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError:
        return "unreadable"
    if head.startswith(b"KDUMP   "):
        return "kdump-compressed"
    if head.startswith(b"makedumpfile"):
        return "flattened"
    if head.startswith(b"DISKDUMP"):
        return "diskdump"
    if head.startswith(b"\x7fELF"):
        return "elf"
    return "unknown"


def scan_vmcoreinfo(path: Path, limit: int = 64 * MIB) -> dict[str, str]:
    """OSRELEASE and BUILD-ID from the dump's VMCOREINFO (stored near the start)."""
    found: dict[str, str] = {}
    carry = b""
    read = 0
    with path.open("rb") as handle:
        while read < limit and len(found) < 2:
            block = handle.read(4 * MIB)
            if not block:
                break
            read += len(block)
            data = carry + block
            for name in (b"OSRELEASE", b"BUILD-ID"):
                match = re.search(name + rb"=([\x21-\x7e]{1,128})\n", data)
                if match and name.decode() not in found:
                    found[name.decode()] = match.group(1).decode()
            carry = data[-256:]
    return found


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(4 * MIB), b""):
            digest.update(block)
    return digest.hexdigest()


#: The figures the capture-memory hook writes (components/fragments/capture-memory-install.sh).
CAPTURE_MEMORY_FILE = "capture-memory.txt"
CAPTURE_MEMORY_FIELDS = (
    "mem_total_kb",
    "mem_available_start_kb",
    "mem_free_start_kb",
    "mem_available_min_kb",
    "mem_free_min_kb",
    "makedumpfile_vmhwm_kb",
    "samples",
    "final",
)
_CAPTURE_LINE = re.compile(r"^([a-z_]+)=(\d+)$")
#: The crashed kernel's own boot log line for its reservation: x86 up to 6.5 ("Reserving 192MB
#: of memory at 752MB for crashkernel"), generic code from 6.6 and arm64 ("crashkernel
#: reserved: 0x... - 0x... (192 MB)").
_RESERVED_LINES = (
    re.compile(r"Reserving (\d+)MB of memory at \d+MB for crashkernel"),
    re.compile(r"crashkernel reserved: 0x[0-9a-f]+ - 0x[0-9a-f]+ \((\d+) MB\)"),
)


def reserved_kb_from_dmesg(text: str) -> int | None:
    """The crashkernel reservation the crashed kernel logged at boot (kB), or None."""
    for pattern in _RESERVED_LINES:
        match = pattern.search(text)
        if match:
            return int(match.group(1)) * 1024
    return None


def capture_memory(folder: Path, reserved_kb: int | None) -> dict[str, int] | None:
    """The capture kernel's memory figures saved with a dump, as numbers (kB), or None.

    ``used_kb`` is the most the capture environment held at once (MemTotal less the lowest
    MemAvailable seen while the dump was saved); ``margin_kb`` is the reservation less that
    (what was left over). Lines that are not ``<name>=<integer>`` are ignored.
    """
    text = read_text(folder / CAPTURE_MEMORY_FILE)
    if text is None:
        return None
    values = {}
    for line in text.splitlines():
        match = _CAPTURE_LINE.match(line.strip())
        if match and match.group(1) in CAPTURE_MEMORY_FIELDS:
            values[match.group(1)] = int(match.group(2))
    if "mem_total_kb" not in values or "mem_available_min_kb" not in values:
        return None
    values["used_kb"] = values["mem_total_kb"] - values["mem_available_min_kb"]
    if reserved_kb:
        values["reserved_kb"] = reserved_kb
        values["margin_kb"] = reserved_kb - values["used_kb"]
    return values


def dump_files(folder: Path) -> tuple[Path | None, Path | None]:
    """The vmcore and the kernel log of a kdump folder (kdump-tools or kdump.service)."""
    vmcore = None
    dmesg = None
    for entry in sorted(folder.iterdir()):
        if not entry.is_file() or "incomplete" in entry.name or entry.name.startswith("."):
            continue
        if entry.name == "vmcore" or entry.name.startswith("dump."):
            vmcore = vmcore or entry
        elif entry.name.startswith("dmesg") or entry.name == "vmcore-dmesg.txt":
            dmesg = dmesg or entry
    return vmcore, dmesg


#: Write only when the key does not exist yet (S3 answers 412 Precondition Failed otherwise).
_IF_ABSENT = ("--if-none-match", "*")


def s3api(
    config: Config, region: str, operation: str, bucket: str, key: str, *args: str
) -> dict[str, Any]:
    """One ``aws s3api <operation> --bucket <bucket> --key <key> <args>`` call."""
    return aws(config, region, "s3api", operation, "--bucket", bucket, "--key", key, *args)


# aws-assumption: s3-conditional-write-keys
def put(config: Config, region: str, bucket: str, key: str, path: Path) -> str:
    """Create the object (never overwrite). 'stored', or 'present' if it already existed."""
    try:
        if path.stat().st_size <= config.single_put_max:
            s3api(config, region, "put-object", bucket, key, "--body", str(path), *_IF_ABSENT)
        else:
            multipart(config, region, bucket, key, path)
    except AgentError as error:
        if is_precondition_failed(error):
            # Ours from an earlier run whose answer was lost (no one else can write here).
            log(f"{key} already exists: kept as it is")
            return "present"
        raise
    return "stored"


def multipart(config: Config, region: str, bucket: str, key: str, path: Path) -> None:
    size = path.stat().st_size
    part_size = max(config.part_size, -(-size // 9000))
    upload = s3api(config, region, "create-multipart-upload", bucket, key)
    upload_id = upload["UploadId"]
    parts = []
    with tempfile.TemporaryDirectory(prefix="crashcart-", dir=config.tmp_dir) as tmp:
        chunk_path = Path(tmp) / "part"
        with path.open("rb") as source:
            number = 1
            while True:
                block = source.read(part_size)
                if not block:
                    break
                chunk_path.write_bytes(block)
                part = ("--upload-id", upload_id, "--part-number", str(number))
                answer = s3api(
                    config, region, "upload-part", bucket, key, *part, "--body", str(chunk_path)
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                number += 1
        manifest = Path(tmp) / "parts.json"
        manifest.write_text(json.dumps({"Parts": parts}))
        completion = ("--upload-id", upload_id, "--multipart-upload", f"file://{manifest}")
        s3api(config, region, "complete-multipart-upload", bucket, key, *completion, *_IF_ABSENT)


# aws-assumption: aws-userid-instance-session
def owner_prefix(config: Config, region: str, instance_id: str) -> str:
    """``<role id>:<instance id>`` (the session's aws:userid) - what the bucket policy allows."""
    try:
        caller = aws(config, region, "sts", "get-caller-identity")
        user_id = str(caller.get("UserId", ""))
    except AgentError as error:
        log(f"sts get-caller-identity failed ({error}); using the instance id as prefix")
        return instance_id
    if user_id.endswith(f":{instance_id}"):
        return user_id
    log(
        f"credentials are not this instance's profile (UserId {user_id}); "
        "using the instance id as prefix"
    )
    return instance_id


_ACCOUNT_ID = re.compile(r"[0-9]{12}")
LAYOUTS = ("instance", "account")


def check_layout(layout: str, source: str) -> str:
    if layout not in LAYOUTS:
        raise AgentError(
            f"{source}={layout!r}: give 'instance' (the account's own bucket, the default) "
            "or 'account' (an organisation's central bucket)"
        )
    return layout


# aws-assumption: org-central-key-account-segment
def account_segment(config: Config, layout: str) -> str:
    """``<account id>/`` for a central bucket (layout ``account``), else "".

    The account comes from the instance identity document (IMDS), the instance's own account:
    the central bucket policy lets the instance's role write only under
    ``dumps/${aws:PrincipalAccount}/``, which is that account.
    """
    if layout != "account":
        return ""
    account = config.account_id
    if account is None:
        document = json.loads(imds_get(config, "instance-identity/document", root="dynamic"))
        account = str(document.get("accountId", ""))
    if not _ACCOUNT_ID.fullmatch(account):
        raise AgentError(f"account id {account!r} from the identity document is not 12 digits")
    return account + "/"


def bucket_and_layout(config: Config, region: str) -> tuple[str, str]:
    """The bucket to ship to and the key layout.

    The bucket: ``CRASHCART_BUCKET`` (then the layout is ``CRASHCART_DUMP_LAYOUT``, default
    "instance"), else the bucket parameter. The layout: ``CRASHCART_DUMP_LAYOUT``, else the
    layout parameter (an organisation's member stack sets
    it to "account"). No layout parameter means "instance" (the account's own bucket); so
    does a refused read, logged (a stack deployed before the parameter existed grants no
    read; in a member account the central bucket then refuses the upload, loudly, and the
    dump stays here for the next run).
    """
    if config.bucket:  # configured by hand: the layout too (default "instance")
        return config.bucket, config.layout or "instance"
    answer = aws(config, region, "ssm", "get-parameter", "--name", config.parameter)
    bucket = str(answer["Parameter"]["Value"])
    if config.layout:
        return bucket, config.layout
    try:
        answer = aws(config, region, "ssm", "get-parameter", "--name", config.layout_parameter)
    except AgentError as error:
        if "ParameterNotFound" in str(error):
            return bucket, "instance"
        if "AccessDenied" in str(error):
            log(f"{config.layout_parameter} not readable ({error}): layout 'instance'")
            return bucket, "instance"
        raise
    layout = str(answer["Parameter"]["Value"])
    return bucket, check_layout(layout, config.layout_parameter)


def ship_folder(
    config: Config, region: str, bucket: str, prefix: str, folder: Path, instance_id: str
) -> bool:
    """Upload one dump folder; True when it is (now) completely shipped."""
    vmcore, dmesg = dump_files(folder)
    if vmcore is None and dmesg is None:
        return False
    dump_id = _DUMP_ID_SAFE.sub("-", folder.name)[:128]
    base = f"dumps/{prefix}/{dump_id}/"
    progress_path = folder / PROGRESS_FILE
    progress = set((read_text(progress_path) or "").split())
    files = []
    info: dict[str, str] = {}
    for source, name in ((vmcore, "vmcore"), (dmesg, "dmesg.txt")):
        if source is None:
            continue
        entry = {
            "name": name,
            "source": source.name,
            "size": source.stat().st_size,
            "sha256": sha256_of(source),
        }
        if name == "vmcore":
            entry["format"] = dump_format(source)
            info = scan_vmcoreinfo(source)
        files.append(entry)
        if name not in progress:
            put(config, region, bucket, base + name, source)
            progress.add(name)
            progress_path.write_text("\n".join(sorted(progress)) + "\n")
    release = info.get("OSRELEASE") or _release_from_dmesg(dmesg)
    reserved_kb = reserved_kb_from_dmesg(read_text(dmesg) or "") if dmesg else None
    if reserved_kb is None:  # this boot's reservation: the same kernel command line, usually
        size = read_text(config.sys / "kernel" / "kexec_crash_size")
        reserved_kb = int(size) // 1024 if size and size.isdigit() and int(size) else None
    dumped = vmcore or dmesg
    assert dumped is not None
    metadata = {
        "schema": 1,
        "instance_id": instance_id,
        "region": region,
        "dump_id": dump_id,
        "source_folder": str(folder),
        "kernel_release": release,
        "build_id": info.get("BUILD-ID"),
        "dump_time": datetime.fromtimestamp(
            dumped.stat().st_mtime,
            timezone.utc,
        ).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "format": files[0].get("format") if vmcore is not None else None,
        "files": files,
        "capture_memory": capture_memory(folder, reserved_kb),
        "shipped_at": utc_now(),
        "agent": "crashcart-agent 1",
    }
    with tempfile.NamedTemporaryFile(
        "w", suffix=".json", delete=False, dir=config.tmp_dir
    ) as handle:
        json.dump(metadata, handle, indent=2)
        metadata_path = Path(handle.name)
    try:
        put(config, region, bucket, base + "metadata.json", metadata_path)
    finally:
        metadata_path.unlink()
    (folder / SHIPPED_MARKER).write_text(
        json.dumps({"bucket": bucket, "prefix": base, "shipped_at": metadata["shipped_at"]}) + "\n"
    )
    log(f"shipped {folder} to s3://{bucket}/{base}")
    return True


def _release_from_dmesg(dmesg: Path | None) -> str | None:
    if dmesg is None:
        return None
    match = re.search(r"Linux version (\S+)", read_text(dmesg) or "")
    return match.group(1) if match else None


def prune(config: Config) -> list[Path]:
    """Delete shipped dump folders beyond the newest ``keep_shipped``; never unshipped ones."""
    shipped = sorted(
        (p for p in config.crash_dir.iterdir() if p.is_dir() and (p / SHIPPED_MARKER).is_file()),
        key=lambda p: ((p / SHIPPED_MARKER).stat().st_mtime, p.name),
    )
    removed = []
    for folder in shipped[: max(0, len(shipped) - config.keep_shipped)]:
        shutil.rmtree(folder)
        removed.append(folder)
        log(f"removed shipped dump {folder} (keeping the newest {config.keep_shipped})")
    return removed


def ship(config: Config) -> int:
    if not config.crash_dir.is_dir():
        log(f"{config.crash_dir} does not exist: nothing to ship")
        return 0
    pending = sorted(
        p
        for p in config.crash_dir.iterdir()
        if p.is_dir() and not (p / SHIPPED_MARKER).exists() and any(dump_files(p))
    )
    failed = 0
    if pending:
        try:
            instance_id, region = identity(config)
            bucket, layout = bucket_and_layout(config, region)
            prefix = account_segment(config, layout) + owner_prefix(config, region, instance_id)
        except AgentError as error:
            log(f"could not ship {len(pending)} dump(s) (kept, retried next run): {error}")
            prune(config)
            return 1
        for folder in pending:
            try:
                ship_folder(config, region, bucket, prefix, folder, instance_id)
            except (AgentError, OSError) as error:
                failed += 1
                log(f"could not ship {folder} (kept, retried next run): {error}")
    prune(config)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "run"
    try:
        config = Config(dict(os.environ))
        if command == "gate":
            return gate(config)
        status = 0
        if command in ("run", "attest"):
            result = attest(config)
            if "--print" in argv:
                print(json.dumps(result, indent=2))
            else:
                log(f"attestation: {tag_value(result)}")
                for warning in result["warnings"]:
                    log(f"warning: {warning}")
                try:
                    publish_attestation(config, result)
                except AgentError as error:
                    log(f"could not publish the attestation: {error}")
                    status = 1
        if command in ("run", "ship"):
            status = max(status, ship(config))
        if command not in ("run", "attest", "ship"):
            log(f"unknown command {command!r}: use run, attest [--print], ship or gate")
            return 2
        return status
    except AgentError as error:
        log(str(error))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
