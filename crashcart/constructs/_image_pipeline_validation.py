"""Synth-time checks of the pipeline's props (private to kdump_image_pipeline)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk

from crashcart.errors import ConfigurationError

#: Xen-based families: SendDiagnosticInterrupt needs Nitro. (i3 is Xen except i3.metal.)
# aws-assumption: diagnostic-interrupt-instance-types
XEN_FAMILIES = frozenset(
    {
        "t1", "t2", "m1", "m2", "m3", "m4", "c1", "c3", "c4", "r3", "r4", "x1", "x1e",
        "i2", "i3", "d2", "h1", "g2", "g3", "g3s", "p2", "p3", "f1", "cc2", "cr1", "hs1",
    }
)  # fmt: skip
_TYPE_RE = re.compile(
    r"^(?P<family>(?P<prefix>[a-z]+)(?P<gen>\d+)(?P<suffix>[a-z-]*))\.(?P<size>[a-z0-9-]+)\Z"
)
_NOEXEC_DIRS = ("/tmp", "/var/tmp", "/dev/shm")  # noqa: S108 - the directories we refuse


def instance_type_architecture(instance_type: str) -> str:
    """``x86_64`` or ``arm64`` for an EC2 instance type name (Graviton: a ``g`` after the
    generation digit, e.g. m7g, c7gn, r8g, im4gn)."""
    match = _TYPE_RE.match(instance_type)
    if not match:
        raise ConfigurationError(
            f"instance type {instance_type!r} is not an EC2 instance type name like 'm7i.large'"
        )
    if match.group("prefix") == "a" and match.group("gen") == "1":
        return "arm64"
    return "arm64" if "g" in match.group("suffix") else "x86_64"


def check_instance_types(instance_types: Sequence[str], architecture: str) -> None:
    """Reject an empty list, A1, Xen-only and Mac types, and types of the other architecture."""
    if not instance_types:
        raise ConfigurationError("instance_types is empty: give at least one build instance type")
    for instance_type in instance_types:
        if cdk.Token.is_unresolved(instance_type):
            continue
        match = _TYPE_RE.match(instance_type)
        if not match:
            raise ConfigurationError(
                f"instance type {instance_type!r} is not an EC2 instance type name like 'm7i.large'"
            )
        family = match.group("family")
        if family == "a1":
            raise ConfigurationError(
                f"instance type {instance_type!r}: A1 instances do not support "
                "SendDiagnosticInterrupt; use a Nitro type such as m7i.large (x86_64) or "
                "m7g.large (arm64)"
            )
        if family in XEN_FAMILIES and match.group("size") != "metal":
            raise ConfigurationError(
                f"instance type {instance_type!r} is Xen-based: SendDiagnosticInterrupt needs "
                "a Nitro instance; use e.g. m7i.large"
            )
        if family.startswith("mac"):
            raise ConfigurationError(
                f"instance type {instance_type!r} is a Mac instance: crashcart images are "
                "Linux or Windows"
            )
        type_arch = instance_type_architecture(instance_type)
        if type_arch != architecture:
            raise ConfigurationError(
                f"instance type {instance_type!r} is {type_arch} but the pipeline's "
                f"architecture is {architecture}: the build instance must run the image's "
                "architecture"
            )


def check_working_directory(working_directory: str) -> None:
    """The build's working directory must not be a (typically noexec) temporary directory."""
    if cdk.Token.is_unresolved(working_directory):
        return
    normalized = working_directory.rstrip("/") or "/"
    if not normalized.startswith("/"):
        raise ConfigurationError(f"working_directory {working_directory!r} must be absolute")
    for noexec in _NOEXEC_DIRS:
        if normalized == noexec or normalized.startswith(noexec + "/"):
            raise ConfigurationError(
                f"working_directory {working_directory!r} is under {noexec}, which hardened "
                "images mount noexec (the build's scripts could not run); use e.g. /root"
            )


def version_from_content(*parts: Any) -> str:
    """A ``1.y.z`` version derived from a SHA-256 of the content.

    Image Builder versions are immutable and CloudFormation replaces a component or recipe
    when its content changes: the replacement must carry a new version, or its creation
    collides with the old one (same name and version) before the old is deleted. Deriving
    y and z from 60 bits of the content hash gives a new version for any new content and the
    same version for the same content (so a redeploy without changes replaces nothing).
    """
    digest = hashlib.sha256(
        json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()
    node_max = 2**30
    return f"1.{int(digest[:8], 16) % node_max}.{int(digest[8:16], 16) % node_max}"
