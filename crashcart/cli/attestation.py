"""``crashcart attestation``: which opted-in instances are not kdump-armed?

The crashcart agent tags its own instance ``crashcart:kdump-attestation`` = ``armed <UTC>``
or ``not-armed <UTC> <reasons>`` at boot and hourly. The remediation function refuses to
interrupt an instance whose attestation is not armed, is older than its max age, is in the
future, is unreadable or is absent (attestation policy ``require``, the default). This command
lists the opted-in instances of one or more regions and judges each attestation exactly as
the function does, so operators find the instances a hang would leave without a dump before
the hang happens.

Only running instances can attest. Pending, stopping and stopped ones are listed as
``not-running`` with their last attestation and do not change the exit code. Shutting-down
and terminated instances are not listed.

Exit codes (0, 1, 2 and 3 mean what they mean for ``crashcart check-permissions``; 4 to 8
are that command's own, so "not armed" is 9):

==== =======================================================================
0    every running opted-in instance is attested armed (or there is none)
1    crashcart itself failed (a bug: please report the traceback)
2    usage error (bad arguments, no or malformed region)
3    could not list: an AWS call failed in at least one region (credentials - none,
     expired or an unknown ``--profile`` -, permission, throttling, network). What the
     other regions answered is still shown. 3 wins over 9:
     an incomplete list cannot vouch for the fleet
9    at least one running opted-in instance is not attested armed (not-armed, stale,
     missing or unparseable)
==== =======================================================================

Read-only: the only AWS call is ``ec2:DescribeInstances``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from crashcart.cli.attestation_report import (
    AttestationReport,
    ExitCode,
    InstanceAttestation,
    RegionError,
)
from crashcart.cli.support import (
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
from crashcart.runtime.attestation import (
    ATTESTATION_TAG_KEY,
    DEFAULT_MAX_AGE_SECONDS,
    Status,
    judge_attestation,
)

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_ec2 import EC2Client

COMMAND = "attestation"
#: Instance states listed. Shutting-down and terminated instances are going away.
LISTED_STATES = ("pending", "running", "stopping", "stopped")
#: DescribeInstances page size (the API's maximum).
PAGE_SIZE = 1000
#: Attempts per DescribeInstances page (botocore standard retry mode, which backs off on
#: RequestLimitExceeded).
MAX_ATTEMPTS = 5


def scan_region(
    ec2: EC2Client,
    *,
    tag: OptInTag,
    max_age_seconds: int,
    now: datetime,
    page_size: int = PAGE_SIZE,
) -> list[InstanceAttestation]:
    """The opted-in instances of ``ec2``'s region, judged.

    One paginated DescribeInstances with server-side filters (the opt-in tag, the listed
    states); the tag is checked again here, exactly (EC2 tag keys are case-sensitive, and
    the function matches exactly too). AWS errors propagate.
    """
    region = ec2.meta.region_name
    paginator = ec2.get_paginator("describe_instances")
    pages = paginator.paginate(
        Filters=[
            {"Name": f"tag:{tag.key}", "Values": [tag.value]},
            {"Name": "instance-state-name", "Values": list(LISTED_STATES)},
        ],
        PaginationConfig={"PageSize": page_size},
    )
    found: list[InstanceAttestation] = []
    for page in pages:
        for reservation in page.get("Reservations", []):
            for raw in reservation.get("Instances", []):
                tags = {t["Key"]: t.get("Value", "") for t in raw.get("Tags", []) if "Key" in t}
                state = str(raw.get("State", {}).get("Name", "unknown"))
                if not tag.matches(tags) or state not in LISTED_STATES:
                    continue
                value = tags.get(ATTESTATION_TAG_KEY)
                found.append(
                    InstanceAttestation(
                        region=region,
                        instance_id=str(raw.get("InstanceId", "")),
                        name=tags.get("Name"),
                        state=state,
                        launch_time=raw.get("LaunchTime"),
                        attestation=value,
                        judgement=judge_attestation(
                            value, now=now, max_age_seconds=max_age_seconds
                        ),
                        now=now,
                    )
                )
    return found


def scan(
    client_for: Callable[[str], EC2Client],
    regions: Sequence[str],
    *,
    tag: OptInTag = OptInTag(),  # noqa: B008 - frozen, immutable value
    max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
    now: datetime | None = None,
    page_size: int = PAGE_SIZE,
) -> AttestationReport:
    """Scan every region; a region whose client or calls fail becomes a :class:`RegionError`.

    :param client_for: region name -> EC2 client (its credentials are the caller's).
    """
    moment = now or datetime.now(UTC)
    instances: list[InstanceAttestation] = []
    errors: list[RegionError] = []
    for region in regions:
        try:
            instances += scan_region(
                client_for(region),
                tag=tag,
                max_age_seconds=max_age_seconds,
                now=moment,
                page_size=page_size,
            )
        except Exception as error:
            if not _is_aws_error(error):
                raise
            code, message = explain_error(error, region)
            errors.append(RegionError(region=region, code=code, message=message))
    order = {status: index for index, status in enumerate(Status)}
    instances.sort(key=lambda i: (regions.index(i.region), order[i.status], i.instance_id))
    return AttestationReport(
        regions=tuple(regions),
        tag=tag,
        max_age_seconds=max_age_seconds,
        generated_at=moment,
        instances=tuple(instances),
        errors=tuple(errors),
    )


def _is_aws_error(error: Exception) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(error, BotoCoreError | ClientError)


def explain_error(error: Exception, region: str) -> tuple[str, str]:
    """(code, plain words) for an AWS error met while listing ``region`` (shared wording)."""
    return explain_aws_error(
        error,
        region,
        call="DescribeInstances",
        action="ec2:DescribeInstances",
        doing="list instances",
    )


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``crashcart attestation`` (see :mod:`crashcart.cli`)."""
    parser = add_command(
        subparsers,
        COMMAND,
        help="which opted-in instances are not kdump-armed? (read-only)",
        doc=__doc__,
        epilog=_exit_code_epilog(),
    )
    parser.add_argument(
        "--region",
        action="append",
        dest="regions",
        metavar="REGION",
        help="a region to list (repeat for several). Default: the AWS config's region",
    )
    parser.add_argument("--profile", help="the AWS profile to use. Default: the default chain")
    parser.add_argument("--tag-key", default=OptInTag().key, help="opt-in tag key")
    parser.add_argument("--tag-value", default=OptInTag().value, help="opt-in tag value")
    parser.add_argument(
        "--max-age-seconds",
        type=_non_negative_int,
        default=DEFAULT_MAX_AGE_SECONDS,
        help="an older armed attestation is stale; give the function's "
        "CRASHCART_ATTESTATION_MAX_AGE_SECONDS. Default: %(default)s (7 days, its default)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON document instead")
    parser.add_argument("--all", action="store_true", help="list armed instances too")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """The command: build the clients, scan, print the table or JSON, return the exit code."""
    try:
        tag = OptInTag(key=args.tag_key, value=args.tag_value)
        session, regions = aws_session(args.profile, list(args.regions or []))
    except ConfigurationError as error:
        report_error(COMMAND, str(error))
        return int(ExitCode.USAGE)
    except CommandError as error:
        report_error(COMMAND, error.message)
        return error.exit_code
    config = client_config()

    def client_for(region: str) -> EC2Client:
        return session.client("ec2", region_name=region, config=config)

    report = scan(client_for, regions, tag=tag, max_age_seconds=args.max_age_seconds)
    # Credentials fail the same way in every region: said once, in the shared words.
    for message in dict.fromkeys(
        failure.message
        if is_credentials_problem(failure.code)
        else f"{failure.region}: {failure.message}"
        for failure in report.errors
    ):
        report_error(COMMAND, message)
    if args.json:
        print(json.dumps(report.to_json(include_armed=args.all), indent=2))
    else:
        print(report.render(include_armed=args.all))
    return report.exit_code


def client_config() -> Config:
    """The EC2 client settings: standard retries (they back off when throttled)."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        user_agent_extra=f"crashcart-{COMMAND}",
    )


def _exit_code_epilog() -> str:
    return exit_code_epilog(
        [
            (0, "every running opted-in instance is attested armed"),
            (1, "crashcart failed (a bug)"),
            (2, "usage error (bad arguments, no or malformed region)"),
            (3, "could not list: credentials, permission, throttling, network (wins over 9)"),
            (9, "some running opted-in instance is not armed, stale, missing or unparseable"),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m crashcart.cli.attestation ...`` (same as ``crashcart attestation``)."""
    from crashcart.cli import main as cli_main

    return cli_main([COMMAND, *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
