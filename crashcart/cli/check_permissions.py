"""``crashcart check-permissions``: may I interrupt this instance, and would it work?

A ``DryRun=True`` ``SendDiagnosticInterrupt`` answers only the IAM question (``DryRunOperation``
= allowed, ``UnauthorizedOperation`` = denied); it says nothing about the instance. So the
check also reads the instance (opt-in tag, state, architecture) and its type (hypervisor,
bare metal) and says, in plain words, what stands in the way.

Exit codes (the first problem found, in this order, decides):

==== =======================================================================
0    ready: allowed, opted in, running, a verified (x86_64 Nitro) type
1    crashcart itself failed (a bug: please report the traceback)
2    usage error (bad arguments, malformed instance id, no or malformed region)
3    could not check: the instance does not exist here, or an AWS call failed
     (credentials - none, expired or an unknown ``--profile`` -, permission, network)
4    denied: IAM does not let the caller interrupt this instance
5    not opted in: the instance lacks the opt-in tag (or has another value)
6    unsupported type: Xen-based or A1 instance types cannot take the interrupt
7    not running: only a running instance can take the interrupt
8    unverified: allowed and otherwise ready, but the type is arm64 (Graviton) or
     another architecture crashcart has not proven the panic path on
==== =======================================================================

No interrupt is ever sent: every ``SendDiagnosticInterrupt`` call here has ``DryRun=True``.
"""

from __future__ import annotations

import argparse
import enum
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crashcart.cli.support import (
    EXIT_USAGE,
    CommandError,
    add_command,
    aws_session,
    exit_code_epilog,
    explain_aws_error,
    is_credentials_problem,
    report_error,
)
from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

COMMAND = "check-permissions"

_INSTANCE_ID = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})\Z")


class Outcome(enum.IntEnum):
    """Exit codes, also the order of precedence when several problems are found."""

    READY = 0
    CHECK_FAILED = 3
    DENIED = 4
    NOT_OPTED_IN = 5
    UNSUPPORTED_TYPE = 6
    NOT_RUNNING = 7
    UNVERIFIED = 8


_HEADLINE = {
    Outcome.READY: "READY: you may interrupt this instance and it can take the interrupt",
    Outcome.CHECK_FAILED: "COULD NOT CHECK",
    Outcome.DENIED: "NOT ALLOWED: IAM denies you the interrupt of this instance",
    Outcome.NOT_OPTED_IN: "NOT OPTED IN: the instance does not carry the opt-in tag",
    Outcome.UNSUPPORTED_TYPE: "UNSUPPORTED: this instance type cannot take the interrupt",
    Outcome.NOT_RUNNING: "NOT RUNNING: only a running instance can take the interrupt",
    Outcome.UNVERIFIED: "UNVERIFIED: allowed, but crashcart has not proven this type's panic path",
}


@dataclass(frozen=True)
class Finding:
    """One line of the report: a topic, whether it is fine, and what to do about it."""

    topic: str
    message: str
    problem: Outcome | None = None
    #: The problem is the caller's credentials or network, not the instance (the command
    #: also reports it on stderr, in the words every crashcart command uses).
    credentials: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class PermissionReport:
    """Everything the check found out about one instance."""

    instance_id: str
    region: str
    findings: tuple[Finding, ...]

    @property
    def outcome(self) -> Outcome:
        problems = [finding.problem for finding in self.findings if finding.problem is not None]
        return min(problems, default=Outcome.READY)

    @property
    def exit_code(self) -> int:
        return int(self.outcome)

    def render(self) -> str:
        """The plain-words report printed by the command."""
        lines = [f"Diagnostic interrupt check for {self.instance_id} in {self.region}:"]
        for finding in self.findings:
            marker = "ok     " if finding.ok else "PROBLEM"
            lines.append(f"  [{marker}] {finding.topic}: {finding.message}")
        lines.append(f"Result: {_HEADLINE[self.outcome]} (exit code {self.exit_code})")
        return "\n".join(lines)


def check_permissions(
    ec2: EC2Client,
    instance_id: str,
    *,
    tag: OptInTag = OptInTag(),  # noqa: B008 - frozen, immutable value
) -> PermissionReport:
    """Check whether the caller may interrupt ``instance_id`` and whether it would work.

    :param ec2: an EC2 client for the instance's region (its credentials are the caller's).
    :raises ConfigurationError: ``instance_id`` is not an instance id.
    """
    if not _INSTANCE_ID.match(instance_id):
        raise ConfigurationError(
            f"instance id {instance_id!r} is not an EC2 instance id such as 'i-0123456789abcdef0'"
        )
    findings = [_check_permission(ec2, instance_id)]
    instance = _describe_instance(ec2, instance_id, findings)
    if instance is not None:
        findings.append(_check_tag(instance, tag))
        findings.append(_check_state(instance))
        findings.append(_check_type(ec2, instance))
    return PermissionReport(
        instance_id=instance_id, region=ec2.meta.region_name, findings=tuple(findings)
    )


def _check_permission(ec2: EC2Client, instance_id: str) -> Finding:
    topic = "permission"
    try:
        ec2.send_diagnostic_interrupt(InstanceId=instance_id, DryRun=True)
    except Exception as error:
        code, message = _error_code(error)
        # aws-assumption: diagnostic-interrupt-error-codes
        if code == "DryRunOperation":
            return Finding(
                topic, "allowed: the DryRun call answered DryRunOperation (nothing was sent)"
            )
        if code == "UnauthorizedOperation":
            return Finding(
                topic,
                "denied: the DryRun call answered UnauthorizedOperation. Your policy must "
                "allow ec2:SendDiagnosticInterrupt on this instance (crashcart's grants "
                "only cover instances that carry the opt-in tag). Decode the details with "
                "'aws sts decode-authorization-message'.",
                Outcome.DENIED,
            )
        if code.startswith("InvalidInstanceID"):
            return Finding(topic, f"no such instance here ({code})", Outcome.CHECK_FAILED)
        if is_credentials_problem(code):
            return _credentials_finding(topic, error, ec2, "SendDiagnosticInterrupt")
        return Finding(topic, f"the DryRun call failed: {code}: {message}", Outcome.CHECK_FAILED)
    return Finding(
        topic,
        "the DryRun call returned without the DryRunOperation error; AWS did not behave as "
        "documented, so whether an interrupt was sent is unknown: check the instance",
        Outcome.CHECK_FAILED,
    )


def _describe_instance(
    ec2: EC2Client, instance_id: str, findings: list[Finding]
) -> Mapping[str, Any] | None:
    try:
        response = ec2.describe_instances(InstanceIds=[instance_id])
    except Exception as error:
        code, message = _error_code(error)
        if is_credentials_problem(code):
            findings.append(_credentials_finding("instance", error, ec2, "DescribeInstances"))
            return None
        if code.startswith("InvalidInstanceID"):
            text = f"no instance {instance_id} in this region ({code})"
        else:
            text = f"could not describe the instance: {code}: {message}"
        findings.append(Finding("instance", text, Outcome.CHECK_FAILED))
        return None
    for reservation in response.get("Reservations", []):
        for instance in reservation.get("Instances", []):
            if instance.get("InstanceId") == instance_id:
                return instance
    findings.append(
        Finding("instance", f"no instance {instance_id} in this region", Outcome.CHECK_FAILED)
    )
    return None


def _check_tag(instance: Mapping[str, Any], tag: OptInTag) -> Finding:
    topic = "opt-in tag"
    tags = {item["Key"]: item.get("Value", "") for item in instance.get("Tags", [])}
    if tag.matches(tags):
        return Finding(topic, f"present: {tag.key}={tag.value}")
    if tag.key in tags:
        return Finding(
            topic,
            f"{tag.key} is {tags[tag.key]!r}, not {tag.value!r}: the instance is not opted in",
            Outcome.NOT_OPTED_IN,
        )
    variants = sorted(key for key in tags if key.lower() == tag.key.lower())
    if variants:
        return Finding(
            topic,
            f"the instance has {', '.join(variants)} but not {tag.key}: EC2 tag keys are "
            "case-sensitive, crashcart's remediation does not treat it as opted in (IAM "
            "may), so fix the key's case",
            Outcome.NOT_OPTED_IN,
        )
    return Finding(
        topic,
        f"missing: tag the instance {tag.key}={tag.value} to opt it in (only a platform role "
        "may, if the organisation guardrail is attached)",
        Outcome.NOT_OPTED_IN,
    )


def _check_state(instance: Mapping[str, Any]) -> Finding:
    state = instance.get("State", {}).get("Name", "unknown")
    if state == "running":
        return Finding("state", "running")
    return Finding(
        "state", f"{state}: only a running instance can take the interrupt", Outcome.NOT_RUNNING
    )


def _check_type(ec2: EC2Client, instance: Mapping[str, Any]) -> Finding:
    topic = "instance type"
    instance_type = str(instance.get("InstanceType", ""))
    architecture = str(instance.get("Architecture", ""))
    try:
        response = ec2.describe_instance_types(InstanceTypes=[instance_type])  # type: ignore[list-item]
    except Exception as error:
        code, message = _error_code(error)
        return Finding(
            topic,
            f"could not describe type {instance_type}: {code}: {message}",
            Outcome.CHECK_FAILED,
        )
    types = response.get("InstanceTypes", [])
    if not types:
        return Finding(topic, f"type {instance_type} is unknown here", Outcome.CHECK_FAILED)
    info: Mapping[str, Any] = types[0]
    return classify_instance_type(instance_type, architecture, info)


def classify_instance_type(
    instance_type: str, architecture: str, type_info: Mapping[str, Any]
) -> Finding:
    """Whether an instance of ``instance_type`` (with ``architecture``) can take the interrupt.

    ``type_info`` is one ``DescribeInstanceTypes`` entry. EC2 documents no "supports
    diagnostic interrupt" field, so: Xen-based types and A1 are unsupported; x86_64 on Nitro
    (``Hypervisor`` = ``nitro``, or bare metal, which reports no hypervisor) is the verified
    path; arm64 (Graviton) and anything else is unverified.
    """
    topic = "instance type"
    hypervisor = type_info.get("Hypervisor")
    bare_metal = bool(type_info.get("BareMetal", False))
    supported = type_info.get("ProcessorInfo", {}).get("SupportedArchitectures", [])
    arch = architecture or (supported[0] if len(supported) == 1 else "")
    if instance_type.split(".", 1)[0] == "a1":
        return Finding(
            topic,
            f"{instance_type} is an A1 type: A1 cannot take a diagnostic interrupt",
            Outcome.UNSUPPORTED_TYPE,
        )
    if hypervisor == "xen":
        return Finding(
            topic,
            f"{instance_type} runs on the Xen hypervisor: only Nitro-based types can take a "
            "diagnostic interrupt; move to a Nitro type",
            Outcome.UNSUPPORTED_TYPE,
        )
    nitro = hypervisor == "nitro" or bare_metal
    if not nitro:
        return Finding(
            topic,
            f"{instance_type}: EC2 reports no Nitro hypervisor and no bare metal, so whether "
            "it can take the interrupt is unverified",
            Outcome.UNVERIFIED,
        )
    platform = "bare metal (Nitro)" if bare_metal else "Nitro"
    if arch == "x86_64":
        return Finding(topic, f"{instance_type} is x86_64 on {platform}: the verified path")
    if arch == "arm64":
        return Finding(
            topic,
            f"{instance_type} is arm64 (Graviton) on {platform}: AWS documentation disagrees "
            "on Graviton support and the x86 NMI panic sysctl does not apply; crashcart treats "
            "it as unverified",
            Outcome.UNVERIFIED,
        )
    return Finding(
        topic,
        f"{instance_type} has architecture {arch or 'unknown'!r}: not a path crashcart has "
        "verified",
        Outcome.UNVERIFIED,
    )


def _credentials_finding(topic: str, error: Exception, ec2: EC2Client, call: str) -> Finding:
    _code, text = explain_aws_error(error, ec2.meta.region_name, call=call)
    return Finding(topic, text, Outcome.CHECK_FAILED, credentials=True)


def _error_code(error: Exception) -> tuple[str, str]:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        details = response.get("Error", {})
        return str(details.get("Code", "Unknown")), str(details.get("Message", ""))
    return type(error).__name__, str(error)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``crashcart check-permissions`` (see :mod:`crashcart.cli`)."""
    parser = add_command(
        subparsers,
        COMMAND,
        help="may I interrupt this instance, and can it take the interrupt? (DryRun only)",
        doc=__doc__,
        epilog=_exit_code_epilog(),
    )
    parser.add_argument("--instance-id", required=True, help="e.g. i-0123456789abcdef0")
    parser.add_argument("--region", help="the instance's region. Default: the AWS config's")
    parser.add_argument("--profile", help="the AWS profile to use. Default: the default chain")
    parser.add_argument("--tag-key", default=OptInTag().key, help="opt-in tag key")
    parser.add_argument("--tag-value", default=OptInTag().value, help="opt-in tag value")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """The command: build the client, check, print the report, return the exit code."""
    try:
        tag = OptInTag(key=args.tag_key, value=args.tag_value)
        if not _INSTANCE_ID.match(args.instance_id):
            raise ConfigurationError(
                f"instance id {args.instance_id!r} is not an EC2 instance id such as "
                "'i-0123456789abcdef0'"
            )
        session, (region,) = aws_session(args.profile, [args.region] if args.region else None)
    except ConfigurationError as error:
        report_error(COMMAND, str(error))
        return EXIT_USAGE
    except CommandError as error:
        report_error(COMMAND, error.message)
        return error.exit_code
    report = check_permissions(session.client("ec2", region_name=region), args.instance_id, tag=tag)
    for message in dict.fromkeys(f.message for f in report.findings if f.credentials):
        report_error(COMMAND, message)
    print(report.render())
    return report.exit_code


def _exit_code_epilog() -> str:
    codes = [(0, "ready"), (1, "crashcart failed (a bug)"), (2, "usage error")]
    codes += [
        (outcome.value, outcome.name.lower().replace("_", " "))
        for outcome in Outcome
        if outcome is not Outcome.READY
    ]
    return exit_code_epilog(codes)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m crashcart.cli.check_permissions ...`` (as ``crashcart check-permissions``)."""
    from crashcart.cli import main as cli_main

    return cli_main([COMMAND, *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
