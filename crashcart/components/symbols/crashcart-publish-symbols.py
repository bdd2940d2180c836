#!/usr/bin/python3
# ruff: noqa: UP017  (runs on Python 3.9: no datetime.UTC)
"""crashcart-publish-symbols: publish the running kernel's debug vmlinux to the symbol store.

Run by the crashcart debug-symbols Image Builder component on the build instance, after the
reboot into the AMI's kernel and after the distribution's debug package was installed:

  crashcart-publish-symbols (--bucket NAME | --bucket-parameter SSM_NAME) [--region REGION]
      [--vmlinux PATH] [--kernel-release RELEASE] [--family F] [--source-package P]
      [--image-build-arn ARN] [--source-ami-id AMI] [--sys-root /sys] [--root /]

1. the debug vmlinux: ``--vmlinux``, else the first of <root>/usr/lib/debug/boot/vmlinux-<release>
   (Debian, Ubuntu) and <root>/usr/lib/debug/lib/modules/<release>/vmlinux (Amazon Linux,
   RHEL, Ubuntu ddebs); <release> is ``--kernel-release`` or ``uname -r``;
2. its GNU build id, from the ELF notes (ELF64 little-endian only: x86_64, aarch64);
3. the running kernel's build id, from <sys-root>/kernel/notes;
4. different ids: refused (a vmlinux of another kernel gives wrong stacks), nothing uploaded;
5. s3://<bucket>/symbols/<build id>/vmlinux, then .../metadata.json, each created with
   ``aws s3api put-object --if-none-match '*'``: 412 PreconditionFailed means it is already
   published (a second bake of the same kernel), which is success. Throttling, 5xx and
   connection errors are retried.

``s3api put-object`` is a single-part upload: up to 5 GB per object; a debug vmlinux is
about 0.3-1 GB. The AWS CLI is ``$CRASHCART_AWS`` (default ``aws``); it needs conditional
writes (AWS CLI v2 >= 2.18 or v1 >= 1.34).

Exit status: 0 published or already published; 1 an AWS call failed; 2 bad input (no
vmlinux, not an ELF64 little-endian file, no build id, bad arguments); 3 refused (the build
ids differ). One JSON line on stdout says what happened; messages go to stderr.

Python 3.9+ standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import struct
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SYMBOLS_PREFIX = "symbols/"
PUBLISHER = "crashcart-publish-symbols/1"
NT_GNU_BUILD_ID = 3
SHT_NOTE = 7
PT_NOTE = 4
MACHINES = {62: "x86_64", 183: "aarch64"}
_MAX_NOTES = 1 << 20  # bytes of one note section/segment we are willing to read
_RETRYABLE = re.compile(
    r"SlowDown|Throttl|RequestLimitExceeded|TooManyRequests|InternalError|ServiceUnavailable"
    r"|RequestTimeout|\((?:500|502|503|504)\)|Could not connect|Connection was closed"
    r"|Read timeout|Connect timeout",
    re.IGNORECASE,
)


class InputError(Exception):
    """Bad input (exit 2)."""


class RefusedError(Exception):
    """The vmlinux is not the running kernel's (exit 3)."""


class AwsError(Exception):
    """An AWS call failed (exit 1)."""


class AlreadyExistsError(Exception):
    """412 PreconditionFailed: the object exists (never overwritten)."""


def log(message: str) -> None:
    print(f"crashcart-publish-symbols: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- ELF notes


def gnu_build_id(notes: bytes, align: int = 4) -> str | None:
    """The GNU build id (lowercase hex) in a run of ELF notes, or None."""
    offset = 0
    while offset + 12 <= len(notes):
        namesz, descsz, kind = struct.unpack_from("<III", notes, offset)
        name_at = offset + 12
        desc_at = name_at + -(-namesz // align) * align
        end = desc_at + -(-descsz // align) * align
        if desc_at + descsz > len(notes):
            return None  # truncated or not notes at all
        if kind == NT_GNU_BUILD_ID and notes[name_at : name_at + namesz] == b"GNU\0" and descsz:
            return notes[desc_at : desc_at + descsz].hex()
        if end <= offset:
            return None
        offset = end
    return None


def elf_build_id(path: Path) -> tuple[str, str]:
    """``(build id, architecture)`` of an ELF64 little-endian file; InputError otherwise."""
    try:
        with path.open("rb") as elf:
            header = elf.read(64)
            if len(header) < 64 or header[:4] != b"\x7fELF":
                raise InputError(f"{path} is not an ELF file (no \\x7fELF magic)")
            if header[4] != 2 or header[5] != 1:
                kind = {1: "ELF32", 2: "ELF64"}.get(header[4], f"ELF class {header[4]}")
                order = {1: "little-endian", 2: "big-endian"}.get(header[5], "unknown order")
                raise InputError(
                    f"{path} is {kind} {order}: only ELF64 little-endian kernels (x86_64, "
                    "aarch64) are supported"
                )
            machine = struct.unpack_from("<H", header, 18)[0]
            phoff, shoff = struct.unpack_from("<QQ", header, 32)
            phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", header, 54)
            regions: list[tuple[int, int, int]] = []  # (offset, size, alignment)
            if shoff and shentsize >= 64:
                if shnum == 0:  # extended numbering: the count is section 0's sh_size
                    elf.seek(shoff)
                    shnum = struct.unpack_from("<Q", elf.read(64), 32)[0]
                for index in range(min(shnum, 65535)):
                    elf.seek(shoff + index * shentsize)
                    section = elf.read(64)
                    if len(section) < 64:
                        break
                    if struct.unpack_from("<I", section, 4)[0] == SHT_NOTE:
                        offset, size = struct.unpack_from("<QQ", section, 24)
                        regions.append((offset, size, struct.unpack_from("<Q", section, 48)[0]))
            if not regions and phoff and phentsize >= 56:
                for index in range(phnum):
                    elf.seek(phoff + index * phentsize)
                    segment = elf.read(56)
                    if len(segment) == 56 and struct.unpack_from("<I", segment, 0)[0] == PT_NOTE:
                        offset = struct.unpack_from("<Q", segment, 8)[0]
                        size = struct.unpack_from("<Q", segment, 32)[0]
                        regions.append((offset, size, struct.unpack_from("<Q", segment, 48)[0]))
            for offset, size, alignment in regions:
                elf.seek(offset)
                found = gnu_build_id(elf.read(min(size, _MAX_NOTES)), 8 if alignment == 8 else 4)
                if found:
                    return found, MACHINES.get(machine, f"elf-machine-{machine}")
    except OSError as error:
        raise InputError(f"cannot read {path}: {error}") from None
    raise InputError(f"{path} has no GNU build-id note: it cannot be matched to a kernel")


def running_build_id(sys_root: Path) -> str:
    notes = sys_root / "kernel" / "notes"
    try:
        data = notes.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read the running kernel's build id: {error}") from None
    found = gnu_build_id(data)
    if not found:
        raise InputError(f"{notes} holds no GNU build-id note")
    return found


def find_vmlinux(root: Path, release: str) -> Path:
    candidates = [
        root / "usr/lib/debug/boot" / f"vmlinux-{release}",
        root / "usr/lib/debug/lib/modules" / release / "vmlinux",
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(
        f"no debug vmlinux for kernel {release}: looked for "
        + " and ".join(str(c) for c in candidates)
        + " (is the distribution's kernel debug package installed? or give --vmlinux)"
    )


# --------------------------------------------------------------------------- AWS CLI


def aws(region: str, *args: str) -> dict[str, Any]:
    """One AWS CLI call with retries; its JSON answer. AlreadyExistsError on 412."""
    env = dict(os.environ)
    env.setdefault("AWS_RETRY_MODE", "standard")
    env.setdefault("AWS_MAX_ATTEMPTS", "5")
    env.setdefault("AWS_EC2_METADATA_V1_DISABLED", "true")
    attempts = max(1, int(env.get("CRASHCART_PUBLISH_ATTEMPTS", "4")))
    delay = float(env.get("CRASHCART_RETRY_DELAY", "5"))
    command = [env.get("CRASHCART_AWS", "aws"), "--region", region, "--output", "json", *args]
    what = " ".join(args[:2])
    for attempt in range(1, attempts + 1):
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=3600, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise AwsError(f"aws {what}: {error}") from None
        if done.returncode == 0:
            out = done.stdout.strip()
            return json.loads(out) if out else {}
        text = done.stderr.strip()[-600:]
        if "PreconditionFailed" in text or "(412)" in text:
            raise AlreadyExistsError(text)
        if attempt < attempts and _RETRYABLE.search(text):
            log(f"aws {what} failed (attempt {attempt} of {attempts}), retrying: {text}")
            time.sleep(delay * attempt)
            continue
        raise AwsError(f"aws {what}: {text}")
    raise AwsError(f"aws {what}: no attempt made")  # pragma: no cover


# aws-assumption: s3-conditional-write-keys
def create(region: str, bucket: str, key: str, body: Path, content_type: str) -> str:
    """Create ``key`` (never overwrite): 'stored', or 'present' when it already exists."""
    try:
        aws(
            region,
            "s3api",
            "put-object",
            "--bucket",
            bucket,
            "--key",
            key,
            "--body",
            str(body),
            "--content-type",
            content_type,
            "--if-none-match",
            "*",
        )
    except AlreadyExistsError:
        log(f"s3://{bucket}/{key} already exists: kept as it is")
        return "present"
    return "stored"


# --------------------------------------------------------------------------- main


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(4 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="crashcart-publish-symbols", description=__doc__)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bucket", help="the symbol store's bucket")
    where.add_argument("--bucket-parameter", help="SSM String parameter holding the bucket name")
    parser.add_argument("--region", help="default: $AWS_REGION / $AWS_DEFAULT_REGION")
    parser.add_argument("--vmlinux", type=Path, help="default: the standard debug locations")
    parser.add_argument("--kernel-release", help="default: uname -r")
    parser.add_argument("--family", help="OS family recorded in metadata.json")
    parser.add_argument("--source-package", help="the debug package recorded in metadata.json")
    parser.add_argument("--image-build-arn", help="Image Builder build recorded, if known")
    parser.add_argument("--source-ami-id", help="the build instance's AMI, recorded if known")
    parser.add_argument("--sys-root", type=Path, default=Path("/sys"))
    parser.add_argument("--root", type=Path, default=Path("/"), help="prefix of the search")
    return parser.parse_args(argv)


def publish(args: argparse.Namespace, result: dict[str, Any]) -> str:
    """Check, then upload; the result word ('published' or 'already-published')."""
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise InputError("no region: give --region (or set AWS_REGION)")
    release = args.kernel_release or platform.release()
    result["kernel_release"] = release
    vmlinux = args.vmlinux or find_vmlinux(args.root, release)
    if not vmlinux.is_file():
        raise InputError(f"--vmlinux {vmlinux}: no such file")
    result["vmlinux"] = str(vmlinux)
    build_id, architecture = elf_build_id(vmlinux)
    running = running_build_id(args.sys_root)
    result["build_id"] = build_id
    if build_id != running:
        result["running_build_id"] = running
        raise RefusedError(
            f"{vmlinux} has build id {build_id} but the running kernel ({release}) has "
            f"{running}: it is another kernel's vmlinux and would give wrong stacks; "
            "nothing was published"
        )
    bucket = args.bucket
    if not bucket:
        answer = aws(region, "ssm", "get-parameter", "--name", args.bucket_parameter)
        bucket = str(answer["Parameter"]["Value"])
    result["bucket"] = bucket
    size = vmlinux.stat().st_size
    folder = f"{SYMBOLS_PREFIX}{build_id}/"
    metadata = {
        "schema": 1,
        "build_id": build_id,
        "kernel_release": release,
        "family": args.family,
        "architecture": architecture,
        "source_package": args.source_package,
        "sha256": sha256_of(vmlinux),
        "size": size,
        "vmlinux_key": folder + "vmlinux",
        "published_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "image_build_arn": args.image_build_arn,
        "source_ami_id": args.source_ami_id,
        "publisher": PUBLISHER,
    }
    result.update(size=size, sha256=metadata["sha256"])
    objects: dict[str, str] = {}
    result["objects"] = objects
    log(f"publishing {vmlinux} ({size} bytes, build id {build_id}) to s3://{bucket}/{folder}")
    objects["vmlinux"] = create(region, bucket, folder + "vmlinux", vmlinux, "application/x-elf")
    with tempfile.TemporaryDirectory(prefix="crashcart-symbols-") as tmp:
        document = Path(tmp) / "metadata.json"
        document.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        objects["metadata.json"] = create(
            region, bucket, folder + "metadata.json", document, "application/json"
        )
    if all(state == "present" for state in objects.values()):
        log(f"build id {build_id} was already published: nothing overwritten")
        return "already-published"
    log(f"published build id {build_id} ({release})")
    return "published"


def main(argv: list[str]) -> int:
    result: dict[str, Any] = {}
    try:
        result["result"] = publish(parse_args(argv), result)
        status = 0
    except InputError as error:
        result.update(result="error", error=str(error))
        status = 2
    except RefusedError as error:
        result.update(result="refused", error=str(error))
        status = 3
    except AwsError as error:
        result.update(result="error", error=str(error))
        status = 1
    if status:
        log(result["error"])
    print(json.dumps(result, sort_keys=True), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
