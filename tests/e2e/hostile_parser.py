"""A parser taken over by a crafted dump: everything it tries, to reach beyond its one dump.

Run by tests/e2e/test_parser_isolation.py in place of crashcart.triage.parser, through the
job's real launch path (crashcart.triage.sandbox.run_parser). It takes the parser's own
arguments plus ``--moto URL --credentials-host URL --other-dump BUCKET/KEY``, tries each way
out, and writes what happened as the "report" (``--report``), so the test can check both
the attempts and how the supervisor treats what a hostile parser writes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import urllib.request
from pathlib import Path
from typing import Any


def attempt(results: dict[str, Any], name: str, action: Any) -> None:
    try:
        results[name] = {"ok": True, "value": str(action())[:300]}
    except BaseException as error:  # every failure is the finding
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        results[name] = {"ok": False, "error": code or type(error).__name__}


def _site_from_argv() -> None:
    """boto3 from the test's environment (an attacker would bring their own)."""
    if "--site" in sys.argv:
        sys.path.append(sys.argv[sys.argv.index("--site") + 1])


def read_other_dump(moto: str, where: str, **credentials: str) -> bytes:
    import boto3

    bucket, key = where.split("/", 1)
    client = boto3.client("s3", endpoint_url=moto, region_name="eu-west-1", **credentials)
    body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def linger(marker: Path) -> None:
    """Leave a process behind, outside the parser's session, that writes ``marker`` later."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            import time

            time.sleep(3)
            marker.write_text("still running after the parser ended")
        os._exit(0)


def main() -> int:
    options = argparse.ArgumentParser()
    options.add_argument("--vmcore", type=Path, required=True)
    options.add_argument("--vmlinux", type=Path)
    options.add_argument("--dmesg", type=Path)
    options.add_argument("--report", type=Path, required=True)
    options.add_argument("--moto", required=True)
    options.add_argument("--credentials-host", required=True)
    options.add_argument("--other-dump", required=True)
    options.add_argument("--findings", type=Path, required=True)
    options.add_argument("--site")
    _site_from_argv()
    args = options.parse_args()
    found: dict[str, Any] = {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "aws_variables": sorted(name for name in os.environ if name.startswith("AWS")),
        "environment": sorted(os.environ),
        "limits": {
            name: resource.getrlimit(getattr(resource, name))
            for name in (
                "RLIMIT_AS",
                "RLIMIT_CPU",
                "RLIMIT_FSIZE",
                "RLIMIT_NOFILE",
                "RLIMIT_NPROC",
                "RLIMIT_CORE",
            )
        },
        "status": {
            line.split(":")[0]: line.split(":", 1)[1].strip()
            for line in Path("/proc/self/status").read_text().splitlines()
            if line.startswith(("CapEff", "CapPrm", "NoNewPrivs"))
        },
    }
    supervisor = os.getppid()
    attempt(found, "own_dump", lambda: len(args.vmcore.read_bytes()))
    attempt(found, "supervisor_environ", Path(f"/proc/{supervisor}/environ").read_bytes)
    attempt(found, "pid1_environ", Path("/proc/1/environ").read_bytes)

    def read_memory() -> bytes:
        with Path(f"/proc/{supervisor}/mem").open("rb") as memory:
            return memory.read(1)

    def append_to_dump() -> int:
        with args.vmcore.open("ab") as dump:
            return dump.write(b"x")

    attempt(found, "supervisor_mem", read_memory)
    attempt(found, "rewrite_dump", append_to_dump)

    def leaked_environ() -> list[str]:
        hits = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if b"AWS_CONTAINER_CREDENTIALS" in (proc / "environ").read_bytes():
                        hits.append(proc.name)
                except OSError:
                    pass
        return hits

    found["processes_leaking_credentials_uri"] = leaked_environ()
    for path in ("/", "/v2/credentials/", "/v2/credentials", "/v4/", "/v2/metadata"):
        attempt(
            found,
            f"credentials_endpoint {path}",
            lambda path=path: urllib.request.urlopen(
                args.credentials_host + path, timeout=5
            ).read(),
        )
    attempt(found, "other_dump_default_chain", lambda: read_other_dump(args.moto, args.other_dump))
    attempt(
        found,
        "other_dump_forged_keys",
        lambda: read_other_dump(
            args.moto,
            args.other_dump,
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
    )
    report = {
        "format": "flattened",
        "reason": "nmi",
        "panic_message": "owned\r\nBcc: all@example.com\r\n\r\nhttps://evil.example/" + "A" * 9000,
        "kernel_release": "<img src=https://evil.example/x.gif>",
        "dmesg_tail": [json.dumps(found)],
    }
    args.report.write_text(json.dumps({"ok": True, "report": report, "vmlinux_used": False}))
    (args.findings / "found.json").write_text(json.dumps(found))
    linger(args.findings / "escaped")
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
