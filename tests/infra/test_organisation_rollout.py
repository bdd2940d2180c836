"""OrganisationRollout: the StackSet, its member template and the Lambda assets per Region."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from crashcart.constructs.organisation_rollout import CallAs, RolloutPace
from tests.support.organisation import (
    DEPLOYING_ACCOUNT,
    ORGANISATION,
    PREFIX,
    REGIONS,
    TARGETS,
    RolloutAssembly,
    rollout_app,
)


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> RolloutAssembly:
    return rollout_app(str(tmp_path_factory.mktemp("rollout")))


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _stack_set(assembly: RolloutAssembly) -> dict[str, Any]:
    (stack_set,) = _of_type(assembly.rollout, "AWS::CloudFormation::StackSet").values()
    props: dict[str, Any] = stack_set["Properties"]
    return props


def test_the_stack_set_is_service_managed_and_deploys_itself_to_new_accounts(
    assembly: RolloutAssembly,
) -> None:
    props = _stack_set(assembly)
    assert props["PermissionModel"] == "SERVICE_MANAGED"
    assert props["AutoDeployment"] == {"Enabled": True, "RetainStacksOnAccountRemoval": False}
    assert props["CallAs"] == "SELF"
    assert props["ManagedExecution"] == {"Active": True}
    assert set(props["Capabilities"]) == {"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"}
    assert props["StackInstancesGroup"] == [
        {"DeploymentTargets": {"OrganizationalUnitIds": list(TARGETS)}, "Regions": list(REGIONS)}
    ]
    assert props["OperationPreferences"] == {
        "MaxConcurrentPercentage": 25,
        "FailureTolerancePercentage": 10,
        "RegionConcurrencyType": "SEQUENTIAL",
        "RegionOrder": list(REGIONS),
    }
    assert "AdministrationRoleARN" not in props and "ExecutionRoleName" not in props


def test_the_template_url_is_the_member_template_published_as_an_asset(
    assembly: RolloutAssembly,
) -> None:
    url = _stack_set(assembly)["TemplateURL"]["Fn::Sub"]
    manifest = json.loads(assembly.path("CrashcartRollout.assets.json").read_text())
    (published,) = [
        entry
        for entry in manifest["files"].values()
        if entry["source"]["path"] == assembly.member_template_file
    ]
    (destination,) = published["destinations"].values()
    assert destination["bucketName"].startswith("cdk-hnb659fds-assets-")
    assert url.endswith(f"/{destination['objectKey']}")
    assert "crashcart:member-template-not-yet-synthesized" not in json.dumps(assembly.rollout)
    # the member template is an asset of the rollout stack, not a stack of its own
    cloud = json.loads(assembly.path("manifest.json").read_text())
    assert not any(name.startswith("CrashcartRolloutMember") for name in cloud["artifacts"]), (
        sorted(cloud["artifacts"])
    )


def test_the_member_template_needs_no_bootstrap_bucket_and_no_asset_parameters(
    assembly: RolloutAssembly,
) -> None:
    member = assembly.member
    text = json.dumps(member)
    assert "Parameters" not in member  # no BootstrapVersion, no asset parameters
    assert "Rules" not in member
    assert "cdk-hnb659fds" not in text
    assert "AssetParameters" not in text
    # no per-account dump bucket: only the evidence bucket and its access-log bucket
    buckets = _of_type(member, "AWS::S3::Bucket")
    assert sorted(name[: -len("ABCDEF12")] for name in buckets) == [
        "EvidenceAccessLogs",
        "EvidenceBucket",
    ]


def test_member_functions_keep_console_output_in_their_own_accounts_evidence_bucket(
    assembly: RolloutAssembly,
) -> None:
    """The central bucket admits only instance sessions writing their own dumps (a Lambda
    session has no ec2:SourceInstanceARN), so evidence written there would be denied."""
    member = assembly.member
    (evidence,) = [n for n in _of_type(member, "AWS::S3::Bucket") if n.startswith("EvidenceBucket")]
    (key,) = [n for n in _of_type(member, "AWS::KMS::Key") if n.startswith("EvidenceKey")]
    writers = {
        name: function["Properties"]["Environment"]["Variables"]["CRASHCART_EVIDENCE_BUCKET"]
        for name, function in _of_type(member, "AWS::Lambda::Function").items()
        if "CRASHCART_EVIDENCE_BUCKET" in function["Properties"]["Environment"]["Variables"]
    }
    assert len(writers) == 2, sorted(writers)  # the remediation and the hold
    assert all(value == {"Ref": evidence} for value in writers.values()), writers
    statements = [
        statement
        for policy in _of_type(member, "AWS::IAM::ManagedPolicy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    puts = [s for s in statements if "s3:PutObject" in json.dumps(s["Action"])]
    evidence_puts = [s for s in puts if "evidence/*" in json.dumps(s["Resource"])]
    assert len(evidence_puts) == 2, evidence_puts
    for statement in evidence_puts:
        assert evidence in json.dumps(statement["Resource"]), statement
    encrypts = [s for s in statements if "kms:GenerateDataKey" in json.dumps(s["Action"])]
    assert any(key in json.dumps(s["Resource"]) for s in encrypts), encrypts


def test_every_function_of_the_member_reads_its_code_from_its_regions_asset_bucket(
    assembly: RolloutAssembly,
) -> None:
    functions = _of_type(assembly.member, "AWS::Lambda::Function")
    assert len(functions) >= 3
    keys = set()
    for name, function in functions.items():
        code = function["Properties"]["Code"]
        assert code["S3Bucket"] == {"Fn::Sub": f"{PREFIX}-${{AWS::Region}}"}, name
        assert code["S3Key"] in assembly.assets, name
        keys.add(code["S3Key"])
    assert keys == set(assembly.assets)


def test_every_asset_is_copied_into_every_regions_bucket_before_the_stack_set(
    assembly: RolloutAssembly,
) -> None:
    rollout = assembly.rollout
    copies = _of_type(rollout, "Custom::CDKBucketDeployment")
    by_bucket = {c["Properties"]["DestinationBucketName"]: (k, c) for k, c in copies.items()}
    assert set(by_bucket) == {f"{PREFIX}-{region}" for region in REGIONS}
    manifest = json.loads(assembly.path("CrashcartRollout.assets.json").read_text())
    published = {
        dest["objectKey"]
        for entry in manifest["files"].values()
        for dest in entry["destinations"].values()
    }
    (stack_set,) = _of_type(rollout, "AWS::CloudFormation::StackSet").values()
    for logical_id, copy in by_bucket.values():
        props = copy["Properties"]
        assert sorted(props["SourceObjectKeys"]) == sorted(assembly.assets)
        # copied from the bootstrap bucket, where cdk deploy publishes them
        assert set(props["SourceObjectKeys"]) <= published
        assert props["Extract"] is False and props["Prune"] is False
        assert logical_id in stack_set["DependsOn"]


def test_the_member_template_holds_the_central_account_per_region(
    assembly: RolloutAssembly,
) -> None:
    mapping = assembly.member["Mappings"]["CrashcartCentral"]
    assert set(mapping) == set(REGIONS)
    assert mapping["eu-west-1"]["DumpBucket"] == "crashcart-central-dumps-eu-west-1"
    (parameter,) = [
        p
        for p in _of_type(assembly.member, "AWS::SSM::Parameter").values()
        if p["Properties"].get("Name") == "/crashcart/dump-bucket"
    ]
    assert parameter["Properties"]["Value"] == {
        "Fn::FindInMap": ["CrashcartCentral", {"Ref": "AWS::Region"}, "DumpBucket"]
    }


def _in_map(attribute: str) -> dict[str, Any]:
    return {"Fn::FindInMap": ["CrashcartCentral", {"Ref": "AWS::Region"}, attribute]}


def test_the_agent_is_told_its_layout_and_may_read_it(assembly: RolloutAssembly) -> None:
    # Without "account" the agent would write dumps/<session>/..., which the central bucket
    # refuses: every dump of the organisation would stay on its instance.
    (layout,) = [
        p["Properties"]
        for p in _of_type(assembly.member, "AWS::SSM::Parameter").values()
        if p["Properties"].get("Name") == "/crashcart/dump-layout"
    ]
    assert layout["Value"] == "account"
    policies = _of_type(assembly.member, "AWS::IAM::ManagedPolicy")
    (agent,) = [p for k, p in policies.items() if "AgentPolicy" in k]
    (read,) = [
        s
        for s in agent["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "ReadBucketNameParameter"
    ]
    assert read["Action"] == "ssm:GetParameter"
    assert len(read["Resource"]) == 2


def test_the_remediation_takes_slots_of_the_organisation_breaker_and_reports_centrally(
    assembly: RolloutAssembly,
) -> None:
    (function,) = [
        f["Properties"]
        for f in _of_type(assembly.member, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"].startswith("crashcart.functions.remediation.")
    ]
    variables = function["Environment"]["Variables"]
    assert variables["CRASHCART_ORG_BREAKER_TABLE_ARN"] == _in_map("BreakerTableArn")
    assert variables["CRASHCART_ORG_EVENT_BUS_ARN"] == _in_map("EventBusArn")
    text = json.dumps(_of_type(assembly.member, "AWS::IAM::ManagedPolicy"))
    for attribute in ("BreakerTableArn", "BreakerKeyArn", "EventBusArn"):
        assert json.dumps(_in_map(attribute)) in text, attribute


def test_the_agent_writes_only_under_its_account_and_session_in_the_central_bucket(
    assembly: RolloutAssembly,
) -> None:
    policies = _of_type(assembly.member, "AWS::IAM::ManagedPolicy")
    (agent,) = [p for p in policies.values() if "ManagedPolicyName" in p["Properties"]]
    assert agent["Properties"]["ManagedPolicyName"] == {
        "Fn::Join": ["", ["crashcart-agent-", {"Ref": "AWS::Region"}]]
    }
    statements = {s["Sid"]: s for s in agent["Properties"]["PolicyDocument"]["Statement"]}
    assert set(statements) == {
        "CreateOwnDumps",
        "EncryptDumpsThroughS3",
        "ReadBucketNameParameter",
        "TagOwnInstanceWithAttestation",
    }
    create = statements["CreateOwnDumps"]
    assert create["Action"] == "s3:PutObject"
    parts = create["Resource"]["Fn::Join"][1]
    bucket = {"Fn::FindInMap": ["CrashcartCentral", {"Ref": "AWS::Region"}, "DumpBucket"]}
    assert parts == [
        "arn:",
        {"Ref": "AWS::Partition"},
        ":s3:::",
        bucket,
        "/dumps/",
        {"Ref": "AWS::AccountId"},
        "/${aws:userid}/*",
    ]
    encrypt = statements["EncryptDumpsThroughS3"]
    assert encrypt["Resource"] == {
        "Fn::FindInMap": ["CrashcartCentral", {"Ref": "AWS::Region"}, "DumpKeyArn"]
    }
    assert set(encrypt["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert "kms:ViaService" in encrypt["Condition"]["StringEquals"]
    text = json.dumps(agent)
    for read in ("s3:GetObject", "s3:ListBucket", "s3:DeleteObject"):
        assert read not in text


def test_the_remediation_writes_evidence_to_the_central_bucket(assembly: RolloutAssembly) -> None:
    text = json.dumps(_of_type(assembly.member, "AWS::IAM::ManagedPolicy"))
    assert '"/evidence/*"' in text
    assert "DumpKeyArn" in text


def test_delegated_administrator_and_pace(tmp_path: Path) -> None:
    assembly = rollout_app(
        str(tmp_path),
        call_as=CallAs.DELEGATED_ADMIN,
        pace=RolloutPace(
            max_concurrent_percentage=50, failure_tolerance_percentage=0, regions_in_parallel=True
        ),
        retain_stacks_on_account_removal=True,
        stack_set_name="crashcart-org",
    )
    props = _stack_set(assembly)
    assert props["CallAs"] == "DELEGATED_ADMIN"
    assert props["StackSetName"] == "crashcart-org"
    assert props["AutoDeployment"]["RetainStacksOnAccountRemoval"] is True
    assert props["OperationPreferences"]["RegionConcurrencyType"] == "PARALLEL"
    assert props["OperationPreferences"]["MaxConcurrentPercentage"] == 50
    assert props["OperationPreferences"]["FailureTolerancePercentage"] == 0


def test_each_regions_asset_bucket_is_readable_by_the_organisation_only(
    assembly: RolloutAssembly,
) -> None:
    for region in REGIONS:
        template = assembly.asset_bucket(region)
        buckets = _of_type(template, "AWS::S3::Bucket")
        named = [b for b in buckets.values() if "BucketName" in b["Properties"]]
        assert [b["Properties"]["BucketName"] for b in named] == [f"{PREFIX}-{region}"]
        (policy,) = [
            p
            for p in _of_type(template, "AWS::S3::BucketPolicy").values()
            if any(
                s.get("Sid") == "OrganisationReadsAssets"
                for s in p["Properties"]["PolicyDocument"]["Statement"]
            )
        ]
        (read,) = [
            s
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if s.get("Sid") == "OrganisationReadsAssets"
        ]
        assert read["Effect"] == "Allow"
        assert read["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": ORGANISATION}}
        assert set(read["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}


def test_the_management_account_gets_the_member_stack_as_an_ordinary_stack(
    tmp_path: Path,
) -> None:
    from crashcart.stacks.organisation_member import OrganisationMemberStack
    from tests.support.organisation import settings
    from tests.support.remediation import new_app

    app = new_app(str(tmp_path))
    stack = OrganisationMemberStack(
        app,
        "CrashcartManagementAccount",
        settings=settings(),
        env=cdk.Environment(account=DEPLOYING_ACCOUNT, region=REGIONS[1]),
    )
    assembly = app.synth()
    artifact = assembly.get_stack_artifact(stack.artifact_id)
    template = artifact.template
    functions = _of_type(template, "AWS::Lambda::Function")
    assert functions
    for function in functions.values():
        assert "cdk-hnb659fds-assets" in json.dumps(function["Properties"]["Code"])
    # no dump bucket of its own: only the evidence bucket and its access-log bucket
    assert sorted(name[: -len("ABCDEF12")] for name in _of_type(template, "AWS::S3::Bucket")) == [
        "EvidenceAccessLogs",
        "EvidenceBucket",
    ]


def test_the_member_hears_from_the_central_account_when_its_dumps_arrive(
    assembly: RolloutAssembly,
) -> None:
    # Without the receiver the member's incidents never learn of a dump in the central
    # bucket: an Auto Scaling hold would keep its instance until the deadline.
    (policy,) = _of_type(assembly.member, "AWS::Events::EventBusPolicy").values()
    assert "222222222222" in json.dumps(policy["Properties"]["Statement"]["Principal"])
    patterns = [
        r["Properties"]["EventPattern"]
        for r in _of_type(assembly.member, "AWS::Events::Rule").values()
        if "EventPattern" in r["Properties"]
    ]
    assert any(p.get("source") == ["crashcart.central"] for p in patterns), patterns


BOOTSTRAP_KEY = f"arn:aws:kms:{REGIONS[0]}:{DEPLOYING_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-123456"


def _copy_role_statements(assembly: RolloutAssembly) -> list[dict[str, Any]]:
    """The statements of the copy function's role (BucketDeployment's one shared handler)."""
    roles = _of_type(assembly.rollout, "AWS::IAM::Role")
    (handler_role,) = [k for k in roles if k.startswith("CustomCDKBucketDeployment")]
    return [
        statement
        for policy in _of_type(assembly.rollout, "AWS::IAM::Policy").values()
        if {"Ref": handler_role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_a_bootstrap_key_lets_the_copy_decrypt_through_s3_only(
    assembly: RolloutAssembly, tmp_path: Path
) -> None:
    """aws-assumption cdk-bootstrap-assets-key-policy: a bootstrap bucket under a key of the
    user's (``--bootstrap-kms-key-id``) needs kms:Decrypt for the copy; the default and
    ``--bootstrap-customer-key`` keys admit the account through S3 and need nothing."""
    keyed = rollout_app(str(tmp_path), bootstrap_key_arn=BOOTSTRAP_KEY)
    kms = [s for s in _copy_role_statements(keyed) if "kms" in json.dumps(s["Action"])]
    assert kms == [
        {
            "Sid": "DecryptStagedAssetsThroughS3",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": BOOTSTRAP_KEY,
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": {
                        "Fn::Join": ["", [f"s3.{REGIONS[0]}.", {"Ref": "AWS::URLSuffix"}]]
                    }
                }
            },
        }
    ]
    # without the prop the copy has no KMS right at all (the template is as before)
    assert not [s for s in _copy_role_statements(assembly) if "kms" in json.dumps(s["Action"])]


@pytest.mark.parametrize(
    "bad",
    [
        "alias/cdk-hnb659fds-assets-key",
        f"arn:aws:kms:{REGIONS[1]}:{DEPLOYING_ACCOUNT}:key/1234abcd",  # not the bucket's Region
        f"arn:aws:s3:::cdk-hnb659fds-assets-{DEPLOYING_ACCOUNT}-{REGIONS[0]}",
    ],
)
def test_a_bootstrap_key_that_is_not_a_key_arn_of_this_region_is_refused(
    bad: str, tmp_path: Path
) -> None:
    from crashcart.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="bootstrap_key_arn"):
        rollout_app(str(tmp_path), bootstrap_key_arn=bad)
