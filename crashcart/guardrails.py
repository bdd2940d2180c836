"""Organisation guardrails: service control policies (SCPs) that protect the opt-in tag.

Identity policies only bind the principals they are attached to. In an organisation anyone
who can tag an instance, edit an Auto Scaling group's tags or a launch template's tags can
opt instances in, and so decides what the unattended remediation may crash. Two SCPs close
that at the organisation level:

``interrupt`` (:data:`INTERRUPT_POLICY_NAME`)
    Deny ``ec2:SendDiagnosticInterrupt`` on every instance that does not carry the opt-in
    tag with its value, for every principal except the named break-glass roles.

``tagging`` (:data:`TAGGING_POLICY_NAME`)
    Deny adding, changing or removing the opt-in tag — on instances (``ec2:CreateTags`` /
    ``ec2:DeleteTags``, which also covers tags given at launch, and ``ec2:RunInstances``
    with the key), through Auto Scaling group tags (``autoscaling:CreateOrUpdateTags`` /
    ``DeleteTags`` / ``CreateAutoScalingGroup``) and on launch templates
    (``ec2:CreateLaunchTemplate`` / ``CreateLaunchTemplateVersion``) — for every principal
    except the named platform roles. Tag keys are compared case-insensitively
    (``ForAnyValue:StringEqualsIgnoreCase``) because IAM matches ``aws:ResourceTag/<key>``
    case-insensitively while EC2 keeps differently-cased keys apart.

The documents are rendered here, not deployed by the CDK app: attach them with AWS
Organizations (``aws organizations create-policy --type SERVICE_CONTROL_POLICY --content
file://...``). SCPs never restrict the management account nor service-linked roles (the
Auto Scaling service-linked role copies group tags to the instances it launches), see
docs/access.md for what that leaves open. ``python -m crashcart.guardrails`` prints both
documents with the default tag.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag

#: AWS Organizations' maximum size of a service control policy document, in characters.
SCP_MAX_CHARACTERS = 5120

INTERRUPT_POLICY_NAME = "crashcart-deny-interrupt-of-untagged-instances"
TAGGING_POLICY_NAME = "crashcart-protect-opt-in-tag"

_PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
_ROLE_ARN = re.compile(r"^arn:(aws|aws-cn|aws-us-gov|\*):iam::(\d{12}|\*):role/[\w+=,.@/*?-]+\Z")
_TAG_KEYS_OPERATOR = "ForAnyValue:StringEqualsIgnoreCase"


@dataclass(frozen=True, kw_only=True)
class ServiceControlPolicy:
    """One rendered SCP: its suggested name, description and document."""

    name: str
    description: str
    document: dict[str, Any]

    def to_json(self, *, indent: int | None = None) -> str:
        """The document as JSON; minified (no insignificant whitespace) unless ``indent``."""
        if indent is None:
            return json.dumps(self.document, separators=(",", ":"))
        return json.dumps(self.document, indent=indent)

    @property
    def size(self) -> int:
        """Characters of the minified document: what counts against the 5,120 limit."""
        return len(self.to_json())


@dataclass(frozen=True, kw_only=True)
class GuardrailPolicies:
    """The two SCPs crashcart recommends for an organisation."""

    interrupt: ServiceControlPolicy
    tagging: ServiceControlPolicy

    def all(self) -> tuple[ServiceControlPolicy, ServiceControlPolicy]:
        return (self.interrupt, self.tagging)


def render_service_control_policies(
    *,
    tag: OptInTag = OptInTag(),  # noqa: B008 - frozen, immutable value
    break_glass_role_arns: Sequence[str] = (),
    platform_role_arns: Sequence[str] = (),
    partition: str = "aws",
) -> GuardrailPolicies:
    """Render the two guardrail SCPs for ``tag``.

    :param tag: the opt-in tag. Default: ``crashcart:diagnostic-interrupt`` = ``enabled``.
    :param break_glass_role_arns: role ARN patterns (``aws:PrincipalArn``, ``*`` allowed for
        the account and in the path / name) that may still interrupt instances without the
        tag. Default: none — nobody can interrupt an untagged instance.
    :param platform_role_arns: role ARN patterns that may set or remove the opt-in tag
        (e.g. the platform team's deployment role). Default: none — nobody can change the
        tag once the SCP is attached; name at least the role that tags your fleets.
    :param partition: the partition of the instance ARNs. Default: ``aws``.
    :raises ConfigurationError: a malformed role ARN pattern or partition, or a rendered
        document over the 5,120-character SCP limit.
    """
    if partition not in _PARTITIONS:
        raise ConfigurationError(f"partition {partition!r} is not one of {', '.join(_PARTITIONS)}")
    break_glass = _check_role_arns("break_glass_role_arns", break_glass_role_arns)
    platform = _check_role_arns("platform_role_arns", platform_role_arns)
    instances = f"arn:{partition}:ec2:*:*:instance/*"

    interrupt = ServiceControlPolicy(
        name=INTERRUPT_POLICY_NAME,
        description=(
            f"Deny diagnostic interrupts (NMI) of instances not tagged {tag.key}={tag.value}"
        )[:512],
        document=_document(
            [
                _deny(
                    "DenyInterruptOfInstancesNotOptedIn",
                    ["ec2:SendDiagnosticInterrupt"],
                    instances,
                    {"StringNotEquals": {tag.condition_key: tag.value}},
                    exempt=break_glass,
                )
            ]
        ),
    )
    key_in_request = {_TAG_KEYS_OPERATOR: {"aws:TagKeys": [tag.key]}}
    tagging = ServiceControlPolicy(
        name=TAGGING_POLICY_NAME,
        description=(f"Only platform roles may set or remove the opt-in tag {tag.key}")[:512],
        document=_document(
            [
                _deny(
                    "DenyOptInTagOnInstances",
                    ["ec2:CreateTags", "ec2:DeleteTags"],
                    instances,
                    key_in_request,
                    exempt=platform,
                ),
                _deny(
                    "DenyLaunchWithOptInTag",
                    ["ec2:RunInstances"],
                    instances,
                    key_in_request,
                    exempt=platform,
                ),
                _deny(
                    "DenyDeleteAllInstanceTags",
                    ["ec2:DeleteTags"],
                    instances,
                    {"Null": {"aws:TagKeys": "true"}},
                    exempt=platform,
                ),
                _deny(
                    "DenyOptInTagOnAutoScalingGroups",
                    [
                        "autoscaling:CreateAutoScalingGroup",
                        "autoscaling:CreateOrUpdateTags",
                        "autoscaling:DeleteTags",
                    ],
                    "*",
                    key_in_request,
                    exempt=platform,
                ),
                _deny(
                    "DenyOptInTagOnLaunchTemplates",
                    ["ec2:CreateLaunchTemplate", "ec2:CreateLaunchTemplateVersion"],
                    "*",
                    key_in_request,
                    exempt=platform,
                ),
            ]
        ),
    )
    policies = GuardrailPolicies(interrupt=interrupt, tagging=tagging)
    for policy in policies.all():
        check_service_control_policy(policy)
    return policies


def check_service_control_policy(policy: ServiceControlPolicy) -> None:
    """Raise :class:`ConfigurationError` unless ``policy`` is well-formed and fits an SCP.

    Checks: the document survives a JSON round trip unchanged, has ``Version`` 2012-10-17 and
    a non-empty ``Statement`` list whose statements have unique ``Sid`` values, an
    ``Effect``, ``Action`` and ``Resource``; the minified document has at most 5,120
    characters.
    """
    text = policy.to_json()
    if json.loads(text) != policy.document:
        raise ConfigurationError(f"SCP {policy.name}: the document is not plain JSON data")
    document = policy.document
    if document.get("Version") != "2012-10-17":
        raise ConfigurationError(f"SCP {policy.name}: Version must be '2012-10-17'")
    statements = document.get("Statement")
    if not isinstance(statements, list) or not statements:
        raise ConfigurationError(f"SCP {policy.name}: Statement must be a non-empty list")
    sids = [statement.get("Sid") for statement in statements]
    if len(set(sids)) != len(sids):
        raise ConfigurationError(f"SCP {policy.name}: statement ids {sids} are not unique")
    for statement in statements:
        missing = {"Effect", "Action", "Resource"} - statement.keys()
        if missing:
            raise ConfigurationError(
                f"SCP {policy.name}: statement {statement.get('Sid')!r} lacks "
                f"{', '.join(sorted(missing))}"
            )
    if policy.size > SCP_MAX_CHARACTERS:
        raise ConfigurationError(
            f"SCP {policy.name} is {policy.size} characters minified; AWS Organizations "
            f"allows at most {SCP_MAX_CHARACTERS}: name fewer role ARN patterns (use "
            "wildcards) or split the roles over several policies"
        )


def _document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def _deny(
    sid: str,
    actions: list[str],
    resource: str,
    condition: dict[str, dict[str, Any]],
    *,
    exempt: list[str],
) -> dict[str, Any]:
    conditions = dict(condition)
    if exempt:
        # aws-assumption: scp-principal-arn-exemptions
        conditions["ArnNotLike"] = {"aws:PrincipalArn": exempt}
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Action": actions,
        "Resource": resource,
        "Condition": conditions,
    }


def _check_role_arns(what: str, arns: Sequence[str]) -> list[str]:
    if isinstance(arns, str):
        raise ConfigurationError(f"{what}={arns!r} is a single string; pass a list of ARNs")
    for arn in arns:
        if not isinstance(arn, str) or not _ROLE_ARN.match(arn):
            raise ConfigurationError(
                f"{what}: {arn!r} is not an IAM role ARN pattern such as "
                "'arn:aws:iam::*:role/platform-deployer' (account may be '*'; the path and "
                "name may use * and ?)"
            )
        if arn.endswith(":role/*"):
            raise ConfigurationError(
                f"{what}: {arn!r} matches every role, which would exempt everyone"
            )
    return list(dict.fromkeys(arns))


def main(argv: Sequence[str] | None = None) -> int:
    """Print the rendered SCPs as JSON (``python -m crashcart.guardrails``)."""
    parser = argparse.ArgumentParser(
        prog="python -m crashcart.guardrails", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--tag-key", default=OptInTag().key)
    parser.add_argument("--tag-value", default=OptInTag().value)
    parser.add_argument("--break-glass-role-arn", action="append", default=[])
    parser.add_argument("--platform-role-arn", action="append", default=[])
    parser.add_argument("--partition", default="aws")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="print only the statements, to merge into SCPs the organisation already has",
    )
    args = parser.parse_args(argv)
    try:
        policies = render_service_control_policies(
            tag=OptInTag(key=args.tag_key, value=args.tag_value),
            break_glass_role_arns=args.break_glass_role_arn,
            platform_role_arns=args.platform_role_arn,
            partition=args.partition,
        )
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.merge:
        print(json.dumps(merge_statements(policies), indent=2))
        return 0
    rendered = {
        policy.name: {"description": policy.description, "document": policy.document}
        for policy in policies.all()
    }
    print(json.dumps(rendered, indent=2))
    return 0


def merge_statements(policies: GuardrailPolicies) -> dict[str, Any]:
    """The statements of both SCPs, for merging into SCPs the organisation already has.

    AWS Organizations attaches at most 5 SCPs to a root, OU or account, so an organisation
    whose targets are full adds these statements to one of its own SCPs instead.
    ``characters`` is what they add to a minified document (statements and the commas between
    them): the SCP they go into must stay within 5,120 characters.
    """
    statements = [
        statement for policy in policies.all() for statement in policy.document["Statement"]
    ]
    added = sum(len(json.dumps(s, separators=(",", ":"))) for s in statements) + len(statements)
    return {
        "statements": statements,
        "characters": added,
        "limit": SCP_MAX_CHARACTERS,
        "note": (
            "Add these statements to the Statement list of an SCP attached where crashcart "
            "runs; the statement ids are unique within crashcart's set, check them against "
            "the SCP's own. AWS Organizations allows 5,120 characters per SCP and 5 SCPs per "
            "root, OU or account."
        ),
    }


if __name__ == "__main__":
    raise SystemExit(main())
