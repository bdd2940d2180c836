"""The crashcart agent in the drill guest: its "EC2" is the moto server on the host.

When the component document installs the crashcart agent (``crashcart-agent.service``), the
drill lets it run as it would on EC2, with these differences, all written into the guest's
``/etc/default/crashcart-agent`` (the unit's EnvironmentFile) before the boot (a guest booted
cold) or by the drill runner before it starts the agent (a restored guest):

- instance id and region given (``CRASHCART_INSTANCE_ID``, ``CRASHCART_REGION``): there is
  no instance metadata service in the guest;
- AWS calls go to ``http://10.0.2.100`` (``AWS_ENDPOINT_URL``), which QEMU's user network
  forwards (``guestfwd``) to the moto server on the host's 127.0.0.1 — the guest reaches
  nothing else (``restrict=on``);
- fake credentials (moto accepts any).

At boot the agent attests (the instance tag ``crashcart:kdump-attestation`` in moto, which
the remediation function's attestation guard then reads) and, after the dump, ships it to the
dump bucket (``/crashcart/dump-bucket`` in moto's SSM); the drill checks the objects.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any

from crashcart.drill import diskfs
from crashcart.drill.qemu import Forward

ENV_FILE = "/etc/default/crashcart-agent"
GUEST_ENDPOINT = "10.0.2.100"
UNIT = "crashcart-agent.service"
ATTESTATION_TAG = "crashcart:kdump-attestation"
#: The image's drop-in lets the agent run only where this file exists (a drill run).
AGENT_ENABLED = "/etc/crashcart-drill-agent-enabled"


#: How a document shows that it installs the agent: the pipeline's component has a step of
#: that name; the running-instance arming script sets this flag (rendered with the agent;
#: in the drill's YAML the script is one quoted scalar: no line anchors).
_AGENT_MARK_RE = re.compile(r"InstallCrashcartAgent|agent_installed=1(?![0-9])")


def has_agent(document_text: str) -> bool:
    """Whether the document installs the crashcart agent (else the drill stands in for its
    attestation)."""
    return UNIT in document_text and _AGENT_MARK_RE.search(document_text) is not None


def forward(moto_port: int) -> Forward:
    return Forward(guest_address=GUEST_ENDPOINT, guest_port=80, host_port=moto_port)


def settings(account: Any) -> list[str]:
    """The drill's lines for the agent's environment file (appended to the component's)."""
    return [
        "# crashcart drill: the local 'EC2' is moto on the host, through QEMU's user network",
        f"CRASHCART_INSTANCE_ID={account.instance_id}",
        "CRASHCART_REGION=eu-west-1",
        f"AWS_ENDPOINT_URL=http://{GUEST_ENDPOINT}",
        "AWS_ACCESS_KEY_ID=drill",
        "AWS_SECRET_ACCESS_KEY=drill",
        "AWS_MAX_ATTEMPTS=2",
    ]


def command_settings(account: Any) -> str:
    """:func:`settings` for a restored guest's command line (one base64 word): the runner
    appends them to the environment file and starts the agent."""
    return base64.b64encode(("\n".join(settings(account)) + "\n").encode()).decode()


def configure(editor: diskfs.DiskEditor, disk: Any, account: Any) -> list[str]:
    """For a guest booted cold: append the drill's settings to the agent's environment file
    (keeps the component's) and let the agent run (the image's drop-in makes it wait for
    ``AGENT_ENABLED``, and sends its log to the serial console too)."""
    existing = diskfs.read_file(disk, ENV_FILE) or b""
    content = existing.decode(errors="replace")
    if content and not content.endswith("\n"):
        content += "\n"
    editor.write(ENV_FILE, content + "\n".join(settings(account)) + "\n")
    editor.write(AGENT_ENABLED, "")
    return [f"{ENV_FILE}: instance id, region, endpoint http://{GUEST_ENDPOINT} (moto)"]


def attestation(account: Any) -> str | None:
    reservations = account.client("ec2").describe_instances(InstanceIds=[account.instance_id])
    for reservation in reservations["Reservations"]:
        for instance in reservation["Instances"]:
            for tag in instance.get("Tags", []):
                if tag["Key"] == ATTESTATION_TAG:
                    return str(tag["Value"])
    return None


def uploaded(account: Any, dump_id: str) -> dict[str, int]:
    """Objects of dump ``dump_id`` in the dump bucket: key -> size."""
    s3 = account.client("s3")
    found: dict[str, int] = {}
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": account.dump_bucket, "Prefix": "dumps/"}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3.list_objects_v2(**kwargs)
        for item in page.get("Contents", []):
            if f"/{dump_id}/" in item["Key"]:
                found[item["Key"]] = int(item["Size"])
        token = page.get("NextContinuationToken")
        if not token:
            return found


def wait_uploaded(account: Any, dump_id: str, *, timeout: float) -> dict[str, int]:
    """Wait for ``metadata.json`` (written last: the dump is complete)."""
    deadline = time.monotonic() + timeout
    objects: dict[str, int] = {}
    while time.monotonic() < deadline:
        objects = uploaded(account, dump_id)
        if any(key.endswith("/metadata.json") for key in objects):
            return objects
        time.sleep(2)
    return objects
