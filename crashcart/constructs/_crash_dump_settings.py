"""Settings values of :class:`crashcart.constructs.crash_dump_bucket.CrashDumpBucket`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3

from crashcart.errors import ConfigurationError
from crashcart.runtime.dumps import DEFAULT_PARAMETER_NAME

# S3 lifecycle: transitions to the infrequent-access classes need 30 days in STANDARD first.
_MIN_DAYS_BEFORE_IA = 30
_IA_CLASSES = ("STANDARD_IA", "ONEZONE_IA")
_PARAMETER_NAME = re.compile(r"^/[A-Za-z0-9_.\-/]{1,1010}\Z")


def _days(name: str, value: cdk.Duration) -> float | None:
    if cdk.Token.is_unresolved(value.to_string()):
        return None
    days = value.to_days(integral=False)
    if days < 1 or days != int(days):
        raise ConfigurationError(
            f"{name}={value.to_human_string()}: S3 lifecycle rules count whole days; give a "
            "whole number of days of at least 1 (cdk.Duration.days(n))"
        )
    return days


@dataclass(frozen=True, kw_only=True)
class DumpLifecycle:
    """How long dumps stay, and where.

    :param transition_after: age at which dumps move to ``storage_class``.
        Default: 30 days (then Glacier Instant Retrieval: still readable in milliseconds).
    :param storage_class: the class dumps move to. Default: ``GLACIER_INSTANT_RETRIEVAL``.
    :param expire_after: age at which dumps (and their noncurrent versions) are deleted.
        Default: 365 days. Crash dumps are memory images (keys, secrets, personal data):
        keep them no longer than investigations need.
    :param abort_incomplete_multipart_after: parts of an upload that never completed are
        deleted after this. Default: 7 days.
    """

    transition_after: cdk.Duration = field(default_factory=lambda: cdk.Duration.days(30))
    storage_class: s3.StorageClass = field(
        default_factory=lambda: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL
    )
    expire_after: cdk.Duration = field(default_factory=lambda: cdk.Duration.days(365))
    abort_incomplete_multipart_after: cdk.Duration = field(
        default_factory=lambda: cdk.Duration.days(7)
    )

    def __post_init__(self) -> None:
        transition = _days("transition_after", self.transition_after)
        expire = _days("expire_after", self.expire_after)
        _days("abort_incomplete_multipart_after", self.abort_incomplete_multipart_after)
        if transition is not None and expire is not None and expire <= transition:
            raise ConfigurationError(
                f"expire_after={expire:g} days is not after transition_after="
                f"{transition:g} days: dumps must expire after they transition (or make "
                "transition_after shorter)"
            )
        if (
            transition is not None
            and self.storage_class.value in _IA_CLASSES
            and transition < _MIN_DAYS_BEFORE_IA
        ):
            raise ConfigurationError(
                f"transition_after={transition:g} days to {self.storage_class.value}: S3 "
                f"needs objects to be at least {_MIN_DAYS_BEFORE_IA} days old before they "
                "move to an infrequent-access class"
            )


def check_parameter_name(name: str) -> None:
    """The SSM parameter name must be a hierarchical name (``/a/b``)."""
    if cdk.Token.is_unresolved(name):
        return
    if not _PARAMETER_NAME.match(name) or name.lower().startswith(("/aws", "/ssm")):
        raise ConfigurationError(
            f"parameter_name={name!r}: give a hierarchical SSM parameter name such as "
            f"{DEFAULT_PARAMETER_NAME!r} (starts with '/', letters, digits and _.-/ only, "
            "not under the reserved /aws or /ssm prefixes)"
        )


def check_object_lock(retention_days: float | None, lifecycle: DumpLifecycle) -> None:
    """An object-lock retention longer than the expiry makes the expiry silently fail."""
    if retention_days is None:
        return
    expire = _days("expire_after", lifecycle.expire_after)
    if expire is not None and retention_days > expire:
        raise ConfigurationError(
            f"object lock retention of {retention_days:g} days is longer than "
            f"expire_after={expire:g} days: locked dumps cannot be expired; shorten the "
            "retention or lengthen expire_after"
        )
