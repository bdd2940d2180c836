"""Synth-time checks of the pipeline's props (private to kdump_image_pipeline): prop types,
the platform's settings, instance types, the working directory, durations in whole units."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from crashcart import _props as props
from crashcart.components.debug_symbols import debug_symbols_info
from crashcart.components.families import FAMILIES, Family, FamilyInfo
from crashcart.constructs._image_pipeline_props import (
    DistributionTarget,
    Hardening,
    ParentImage,
    PipelineSchedule,
)
from crashcart.constructs.debug_symbol_store import DebugSymbolStore
from crashcart.crashkernel_tiers import crashkernel_of, for_image, under_arm64_minimum
from crashcart.errors import ConfigurationError
from crashcart.kdump import KdumpSettings, WindowsCrashDumpSettings

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


def check_prop_types(**values: object) -> None:
    """A prop of the wrong type fails here, naming it, not as an AttributeError later."""
    owner = "KdumpImagePipeline"
    optional: tuple[tuple[str, type, str], ...] = (
        ("kdump", KdumpSettings, "KdumpSettings(crashkernel='256M')"),
        ("windows_crash_dump", WindowsCrashDumpSettings, "WindowsCrashDumpSettings()"),
        ("parent_image", ParentImage, "ParentImage.from_ssm_parameter('/aws/service/...')"),
        ("hardening", Hardening, "Hardening.none(reason='...')"),
        ("subnet", ec2.ISubnet, "vpc.private_subnets[0]"),
        ("key", kms.IKey, "kms.Key(self, 'ImageKey', enable_key_rotation=True)"),
        ("log_bucket", s3.IBucket, "s3.Bucket(self, 'BuildLogs')"),
        ("topic", sns.ITopic, "sns.Topic(self, 'Topic')"),
        ("schedule", PipelineSchedule, "PipelineSchedule.cron('cron(0 3 ? * sun *)')"),
        ("debug_symbols", DebugSymbolStore, "DebugSymbolStore(self, 'Symbols')"),
    )
    for name, expected, example in optional:
        props.check(owner, name, values[name], expected, example=example, optional=True)
    for name, expected, what in (
        ("security_groups", ec2.ISecurityGroup, "ec2.ISecurityGroup"),
        ("distribution", DistributionTarget, "DistributionTarget"),
    ):
        if values[name] is not None:
            props.check_sequence(
                owner,
                name,
                values[name],
                lambda item_name, item, expected=expected, what=what: props.check(
                    owner, item_name, item, expected, example=what
                ),
                what=what,
            )


def check_platform(
    scope: Construct,
    *,
    family: Family,
    architecture: str,
    kdump: KdumpSettings | None,
    windows_crash_dump: WindowsCrashDumpSettings | None,
    working_directory: str | None,
    debug_symbols: DebugSymbolStore | None,
) -> tuple[FamilyInfo, KdumpSettings | WindowsCrashDumpSettings, str | None]:
    """The family's facts, the crash-dump settings of its platform and the working directory
    (``/root`` by default on Linux); a setting of the other platform is an error."""
    if family not in FAMILIES:
        raise ConfigurationError(
            f"OS family {family!r} is not supported; use one of {', '.join(FAMILIES)}"
        )
    info = FAMILIES[family]
    if architecture not in ("x86_64", "arm64"):
        raise ConfigurationError(f"architecture {architecture!r} is not 'x86_64' or 'arm64'")
    if architecture == "arm64":
        if info.platform == "Windows":
            raise ConfigurationError(
                f"{family} on arm64: EC2 has no arm64 Windows Server images; use x86_64"
            )
        cdk.Annotations.of(scope).add_warning_v2(
            # aws-assumption: diagnostic-interrupt-instance-types
            "crashcart:arm64-unverified",
            "arm64 (Graviton): the diagnostic-interrupt path is unverified (the x86 "
            "unknown_nmi_panic sysctl does not apply; sources disagree on Graviton "
            "support). The image is built and kdump armed, but prove it with an in-account "
            "crash drill before relying on it.",
        )

    if debug_symbols is not None:
        debug_symbols_info(family)  # ConfigurationError on Windows, with the reason

    settings: KdumpSettings | WindowsCrashDumpSettings
    if info.platform == "Windows":
        if kdump is not None:
            raise ConfigurationError(
                f"{family} is Windows: kdump (KdumpSettings) is Linux-only; use "
                "windows_crash_dump=WindowsCrashDumpSettings(...)"
            )
        if working_directory is not None:
            raise ConfigurationError(
                f"{family} is Windows: working_directory is a Linux-only setting here "
                "(the noexec /tmp problem does not exist on Windows)"
            )
        settings = windows_crash_dump or WindowsCrashDumpSettings()
    else:
        if windows_crash_dump is not None:
            raise ConfigurationError(
                f"{family} is Linux: windows_crash_dump is Windows-only; use kdump="
                "KdumpSettings(...)"
            )
        settings = for_image(kdump or KdumpSettings(), family, architecture)
        _warn_under_arm64_minimum(scope, settings, architecture)
        working_directory = working_directory or "/root"
        check_working_directory(working_directory)
    return info, settings, working_directory


def _warn_under_arm64_minimum(scope: Construct, settings: KdumpSettings, architecture: str) -> None:
    """A crashkernel of yours under Red Hat's documented arm64 minimum is a synth warning (a
    value you set wins: it may be measured; the defaults never are under it)."""
    if architecture != "arm64":
        return
    problems = under_arm64_minimum(crashkernel_of(settings))
    if problems:
        cdk.Annotations.of(scope).add_warning_v2(
            "crashcart:crashkernel-under-arm64-minimum",
            f"crashkernel={crashkernel_of(settings)} on arm64 reserves "
            f"{'; '.join(problems)}: under Red Hat's documented arm64 minimum the capture "
            "kernel may run out of memory; prove the value with a canary crash drill "
            "(docs/canary-drill.md) or use the default",
        )


def whole(
    name: str, value: cdk.Duration | None, *, unit: str, low: int, high: int | None
) -> float | None:
    """``value`` in whole ``unit`` (days / minutes), checked; None stays None.

    A token is passed through unresolved (CloudFormation checks it at deployment).
    """
    if value is None:
        return None
    if not isinstance(value, cdk.Duration):
        raise ConfigurationError(
            f"{name}={value!r}: must be a cdk.Duration, e.g. cdk.Duration.{unit}({low})"
        )
    if value.is_unresolved():
        # A token stays a token (a number CloudFormation resolves at deployment).
        return value.to_days() if unit == "days" else value.to_minutes()
    try:
        amount = value.to_days() if unit == "days" else value.to_minutes()
    except Exception:  # jsii: not a whole number of the unit
        raise ConfigurationError(
            f"{name}={value.to_human_string()}: must be a whole number of {unit}"
        ) from None
    if amount < low or (high is not None and amount > high):
        allowed = f"{low}-{high}" if high is not None else f"at least {low}"
        raise ConfigurationError(f"{name}={value.to_human_string()}: use {allowed} {unit}")
    return int(amount)
