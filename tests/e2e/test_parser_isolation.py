"""Issue 22: a parser taken over by a crafted dump reaches nothing beyond its own dump.

The triage job's supervisor (``crashcart.triage.job.process``, real launch path:
``crashcart.triage.sandbox.run_parser``) runs as root with credentials delivered the way
Fargate delivers them (an HTTP endpoint named by an environment variable; here
``AWS_CONTAINER_CREDENTIALS_FULL_URI`` on 127.0.0.1, as the relative URI on 169.254.170.2 is
on Fargate). The parser is replaced by ``hostile_parser.py``, which tries every way out:
the environment, the supervisor's ``/proc`` files, the credential endpoint without its
secret path, the default credential chain, forged keys. A moto server on 127.0.0.1 with
authentication on holds this dump and another instance's. The same script run with the
supervisor's environment is the control: it does read the other dump, so every probe works.

Changing user needs root: CI runs as root; elsewhere the test is skipped, saying so.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crashcart.triage import sandbox
from tests.conftest import REPO_ROOT
from tests.support import dumps as dump_support
from tests.support import triage_job as support

HERE = Path(__file__).resolve().parent
OTHER_OWNER = "AROAEXAMPLEROLEID0002:i-0fedcba9876543210"

if os.geteuid() != 0:
    if os.environ.get("CI"):
        pytest.fail("CI must run tests/e2e as root: the parser's uid drop needs it")
    pytestmark = pytest.mark.skip(
        reason="the parser isolation test changes user (setuid/setgid): run it as root (CI does)"
    )


def _interpreter() -> str:
    """A Python the parser's user may run: the job image's is /usr/local/bin/python; here the
    test's own unless it lives in a folder only root can enter (pyenv under /root)."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        path = Path(candidate).resolve()
        if all(os.stat(parent).st_mode & 0o001 for parent in path.parents) and (
            path.stat().st_mode & 0o001
        ):
            return candidate
    pytest.skip("no Python interpreter that uid 65534 may run")


SITE = sysconfig.get_paths()["purelib"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    """A moto server of its own (its authentication is switched on below)."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(10)


class _Credentials(http.server.BaseHTTPRequestHandler):
    path_secret = ""
    body = b""

    def do_GET(self) -> None:  # the name http.server calls
        if self.path == self.path_secret:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(self.body)
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def world(moto: str) -> Iterator[dict[str, Any]]:
    account = support.Account(moto).setup()
    ours = support.ship(
        account,
        vmcore=dump_support.vmcore_bytes("flattened", 65536),
        dmesg=dump_support.NMI_PANIC_DMESG,
        build_id=None,
    )
    account.open_incident([ours])
    other = support.ship(
        account,
        vmcore=b"another instance's memory: secret-of-i-0fedcba9876543210",
        dmesg=None,
        build_id=None,
        owner=OTHER_OWNER,
    )
    iam = support.client(moto, "iam")
    iam.create_user(UserName="triage-task")
    iam.put_user_policy(
        UserName="triage-task",
        PolicyName="task",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["s3:*", "dynamodb:*", "sns:*", "sqs:*"],
                        "Resource": "*",
                    }
                ],
            }
        ),
    )
    key = iam.create_access_key(UserName="triage-task")["AccessKey"]
    secret_path = f"/v2/credentials/{uuid.uuid4()}"
    handler = type("Handler", (_Credentials,), {})
    handler.path_secret = secret_path
    handler.body = json.dumps(
        {
            "AccessKeyId": key["AccessKeyId"],
            "SecretAccessKey": key["SecretAccessKey"],
            "Token": "",
            "Expiration": "2099-01-01T00:00:00Z",
        }
    ).encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"http://127.0.0.1:{server.server_address[1]}"
    # From here on moto checks every request's signature and the caller's IAM policy.
    switch = urllib.request.Request(
        moto + "/moto-api/reset-auth", b"0", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(switch).read()
    work = Path(tempfile.mkdtemp(prefix="crashcart-isolation-"))
    work.chmod(0o755)
    findings = work / "findings"
    findings.mkdir()
    findings.chmod(0o777)
    yield {
        "account": account,
        "ours": ours,
        "other": f"{support.DUMP_BUCKET}/{other.replace('metadata.json', 'vmcore')}",
        "host": host,
        "uri": host + secret_path,
        "work": work,
        "keys": key,
    }
    server.shutdown()
    shutil.rmtree(work, ignore_errors=True)


def _supervisor_env(world: dict[str, Any], moto: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": str(REPO_ROOT),
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": world["uri"],
        "AWS_ENDPOINT_URL": moto,
        "AWS_DEFAULT_REGION": support.REGION,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "HOME": str(world["work"]),
        **world["account"].env(world["ours"], world["work"] / "scratch", symbols=False),
        "CRASHCART_TASK_MEMORY_MIB": "2048",
    }


def _hostile_args(world: dict[str, Any], moto: str, report: Path) -> list[str]:
    return [
        "--vmcore",
        str(report.parent / "vmcore"),
        "--report",
        str(report),
        "--moto",
        moto,
        "--credentials-host",
        world["host"],
        "--other-dump",
        world["other"],
        "--findings",
        str(report.parent),
    ]


def test_the_control_reads_the_other_dump_with_the_supervisors_environment(
    world: dict[str, Any], moto: str
) -> None:
    """Without isolation the same probes succeed: the test can fail."""
    folder = world["work"] / "control"
    folder.mkdir()
    (folder / "vmcore").write_bytes(b"x")
    result = subprocess.run(
        [
            sys.executable,
            str(HERE / "hostile_parser.py"),
            *_hostile_args(world, moto, folder / "r"),
        ],
        env=_supervisor_env(world, moto),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["other_dump_default_chain"]["ok"], found
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in found["aws_variables"]
    assert found["supervisor_environ"]["ok"]  # same user: its /proc files are readable
    assert found["other_dump_forged_keys"]["error"] in ("InvalidAccessKeyId", "AccessDenied")


def test_a_taken_over_parser_has_no_credentials_and_cannot_read_another_dump(
    world: dict[str, Any], moto: str
) -> None:
    scratch = world["work"] / "scratch"
    scratch.mkdir(exist_ok=True)
    scratch.chmod(0o755)
    supervisor = subprocess.run(
        [
            sys.executable,
            str(HERE / "supervisor_driver.py"),
            moto,
            world["host"],
            world["other"],
            str(world["work"] / "findings"),
            _interpreter(),
            SITE,
        ],
        env=_supervisor_env(world, moto),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert supervisor.returncode == 0, supervisor.stdout + supervisor.stderr
    outcome = support.outcome(supervisor)
    assert outcome["outcome"] == "reported"

    reader = _client(world, moto, "s3")
    json_key = next(key for key in outcome["report_keys"] if key.endswith(".json"))
    report = json.loads(reader.get_object(Bucket=support.DUMP_BUCKET, Key=json_key)["Body"].read())
    found = _findings(world)

    assert (found["uid"], found["euid"], found["gid"], found["groups"]) == (65534, 65534, 65534, [])
    assert found["aws_variables"] == []
    assert set(found["environment"]) == set(sandbox.parser_environment(Path("/x")))
    assert found["status"]["NoNewPrivs"] == "1"
    assert int(found["status"]["CapEff"], 16) == 0 and int(found["status"]["CapPrm"], 16) == 0
    assert found["own_dump"]["ok"]  # the one dump it was given
    assert not found["rewrite_dump"]["ok"]  # read-only
    for probe in ("supervisor_environ", "pid1_environ", "supervisor_mem"):
        assert found[probe] == {"ok": False, "error": "PermissionError"}, (probe, found[probe])
    assert found["processes_leaking_credentials_uri"] == []
    for name, result in found.items():
        if name.startswith("credentials_endpoint"):
            assert not result["ok"], (name, result)
    assert found["other_dump_default_chain"] == {"ok": False, "error": "NoCredentialsError"}
    assert found["other_dump_forged_keys"]["error"] in ("InvalidAccessKeyId", "AccessDenied")

    limits = {name: tuple(value) for name, value in found["limits"].items()}
    assert limits["RLIMIT_AS"] == ((2048 - sandbox.SUPERVISOR_RESERVE_MIB) * 2**20,) * 2
    assert limits["RLIMIT_FSIZE"] == (sandbox.MAX_FILE_BYTES,) * 2
    assert limits["RLIMIT_NOFILE"] == (sandbox.MAX_OPEN_FILES,) * 2
    assert limits["RLIMIT_NPROC"] == (sandbox.MAX_PROCESSES,) * 2
    assert limits["RLIMIT_CORE"] == (0, 0)
    assert 0 < limits["RLIMIT_CPU"][0] == limits["RLIMIT_CPU"][1] <= 600 - 60

    # What it left running outside its session was killed when the parser ended.
    time.sleep(4)
    assert not (world["work"] / "findings" / "escaped").exists()

    # What the hostile parser wrote reached S3, the incident and on-call only as data.
    assert "\n" not in report["panic_message"] and len(report["panic_message"]) <= 400
    assert "https://" not in json.dumps(report)
    (note,) = _notes(world, moto)
    assert not [row for row in note.split("\n") if row.startswith("Bcc:")]
    assert "https://" not in note


def _findings(world: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((world["work"] / "findings" / "found.json").read_text())
    return found


def _client(world: dict[str, Any], moto: str, service: str) -> Any:
    """A client with the task's keys (moto checks signatures from the fixture on)."""
    import boto3

    keys = world["keys"]
    return boto3.client(
        service,
        endpoint_url=moto,
        region_name=support.REGION,
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
    )


def _notes(world: dict[str, Any], moto: str) -> list[str]:
    sqs = _client(world, moto, "sqs")
    messages = sqs.receive_message(QueueUrl=world["account"].queue_url, MaxNumberOfMessages=10).get(
        "Messages", []
    )
    return [json.loads(message["Body"])["Message"] for message in messages]


def test_the_real_parser_runs_as_its_own_user_and_its_failure_is_recorded(
    world: dict[str, Any], moto: str
) -> None:
    """The real parser (drgn) through the same launch path: it reads its one dump as uid
    65534 under the limits, writes its verdict, and the supervisor records it."""
    scratch = world["work"] / "scratch"
    scratch.mkdir(exist_ok=True)
    scratch.chmod(0o755)
    supervisor = subprocess.run(
        [
            sys.executable,
            str(HERE / "supervisor_driver.py"),
            moto,
            world["host"],
            world["other"],
            str(world["work"] / "findings"),
            _interpreter(),
            SITE,
            "real",
        ],
        env=_supervisor_env(world, moto),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert supervisor.returncode == 2, supervisor.stdout + supervisor.stderr
    outcome = support.outcome(supervisor)
    # drgn opened the file as the parser's user and refused it (the filler is no dump)
    assert outcome["outcome"] == "rejected"
    assert "cannot open it as a crash dump" in outcome["reason"], outcome
    assert not list(scratch.iterdir()), "the workspace is removed"
