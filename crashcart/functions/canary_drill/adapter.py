"""The drill function's AWS calls (EC2, SSM, DynamoDB, S3, SNS) over injected clients.

``ClientError`` codes become domain outcomes here (:class:`CapacityError`, a lost lock),
never in the logic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from crashcart.runtime import canary
from crashcart.runtime.attestation import ATTESTATION_TAG_KEY
from crashcart.runtime.dumps import capture_memory_figures
from crashcart.runtime.incident import INCIDENT_PREFIX, instance_pk, iso, parse_time

from .logic import CAPACITY_ERRORS, IncidentFacts, Readiness
from .settings import Settings

#: Canaries in these states still cost money or may start again: the janitor ends them.
LIVE_STATES = ("pending", "running", "stopping", "stopped")


class CapacityError(Exception):
    """EC2 could not start the canary for a reason that says nothing about the AMI."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _s(item: Mapping[str, Any], name: str) -> str:
    return str(item.get(name, {}).get("S", ""))


def _time(value: str) -> datetime | None:
    try:
        return parse_time(value) if value else None
    except ValueError:
        return None


class Adapter:
    """AWS calls, with injected clients."""

    def __init__(
        self, settings: Settings, *, ec2: Any, ssm: Any, dynamodb: Any, s3: Any, sns: Any
    ) -> None:
        self.settings = settings
        self.ec2 = ec2
        self.ssm = ssm
        self.dynamodb = dynamodb
        self.s3 = s3
        self.sns = sns

    # -- the AMI -------------------------------------------------------------------------------
    def parameter(self, name: str) -> str:
        return str(self.ssm.get_parameter(Name=name)["Parameter"]["Value"])

    def image_tags(self, ami_id: str) -> dict[str, str] | None:
        """The AMI's tags; None when this account cannot see it."""
        try:
            images = self.ec2.describe_images(ImageIds=[ami_id])["Images"]
        except ClientError as error:
            if _error_code(error) in ("InvalidAMIID.NotFound", "InvalidAMIID.Malformed"):
                return None
            raise
        if not images:
            return None
        return {t["Key"]: t["Value"] for t in images[0].get("Tags", [])}

    def promote(self, ami_id: str, now: datetime) -> None:
        """The verified parameter names the AMI; the AMI is tagged verified."""
        self.ssm.put_parameter(
            Name=self.settings.verified_parameter,
            Value=ami_id,
            Type="String",
            # aws-assumption: ssm-ec2-image-parameter
            DataType="aws:ec2:image",
            Overwrite=True,
            Description="crashcart: the newest AMI that passed the canary crash drill",
        )
        self.tag_image(ami_id, canary.AmiStatus.VERIFIED, now)

    def tag_image(self, ami_id: str, status: canary.AmiStatus, now: datetime) -> None:
        tags = [{"Key": canary.AMI_STATUS_TAG_KEY, "Value": status.value}]
        if status is canary.AmiStatus.VERIFIED:
            tags.append({"Key": canary.AMI_VERIFIED_AT_TAG_KEY, "Value": iso(now)})
        self.ec2.create_tags(Resources=[ami_id], Tags=tags)

    # -- the lock ------------------------------------------------------------------------------
    def take_lock(self, ami_id: str, execution: str, now: datetime) -> str | None:
        """Take the AMI's drill lock; return None, or the execution that holds it."""
        epoch = int(now.timestamp())
        try:
            self.dynamodb.put_item(
                TableName=self.settings.drill_table,
                Item={
                    "pk": {"S": canary.ami_pk(ami_id)},
                    "sk": {"S": canary.LOCK_SK},
                    "execution": {"S": execution},
                    "taken_at": {"S": iso(now)},
                    "expires_at": {"N": str(epoch + self.settings.lock_seconds)},
                },
                ConditionExpression=(
                    "attribute_not_exists(pk) OR expires_at < :now OR execution = :me"
                ),
                ExpressionAttributeValues={":now": {"N": str(epoch)}, ":me": {"S": execution}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _error_code(error) != "ConditionalCheckFailedException":
                raise
            holder: Mapping[str, Any] = error.response.get("Item") or {}  # type: ignore[assignment]
            return _s(holder, "execution") or "another execution"
        return None

    def release_lock(self, ami_id: str, execution: str) -> bool:
        """Release the AMI's lock if ``execution`` holds it."""
        try:
            self.dynamodb.delete_item(
                TableName=self.settings.drill_table,
                Key={"pk": {"S": canary.ami_pk(ami_id)}, "sk": {"S": canary.LOCK_SK}},
                ConditionExpression="execution = :me",
                ExpressionAttributeValues={":me": {"S": execution}},
            )
        except ClientError as error:
            if _error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def locks_of(self, execution: str) -> list[str]:
        """The AMIs whose lock ``execution`` holds (the table is small: one item per AMI)."""
        amis: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self.settings.drill_table,
            "FilterExpression": "sk = :lock AND execution = :me",
            "ExpressionAttributeValues": {":lock": {"S": canary.LOCK_SK}, ":me": {"S": execution}},
        }
        while True:
            page = self.dynamodb.scan(**kwargs)
            amis += [_s(i, "pk").removeprefix("ami#") for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return amis
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def record(
        self,
        ami_id: str,
        execution: str,
        outcome: str,
        results: Sequence[Mapping[str, Any]],
        now: datetime,
    ) -> None:
        self.dynamodb.put_item(
            TableName=self.settings.drill_table,
            Item={
                "pk": {"S": canary.ami_pk(ami_id)},
                "sk": {"S": f"{canary.RESULT_PREFIX}{iso(now)}"},
                "execution": {"S": execution},
                "outcome": {"S": outcome},
                "results": {"S": json.dumps(list(results), sort_keys=True)},
            },
        )

    # -- canaries ------------------------------------------------------------------------------
    def launch(self, ami_id: str, instance_type: str, execution: str) -> tuple[str, datetime]:
        """Launch one canary; :class:`CapacityError` when EC2 has no room for it."""
        s = self.settings
        tags = [
            {"Key": "Name", "Value": f"crashcart-drill-canary-{instance_type}"},
            {"Key": canary.CANARY_TAG_KEY, "Value": s.canary_tag_value},
            {"Key": canary.EXECUTION_TAG_KEY, "Value": execution},
            {"Key": s.opt_in_tag_key, "Value": s.opt_in_tag_value},
        ]
        try:
            response = self.ec2.run_instances(
                ImageId=ami_id,
                InstanceType=instance_type,
                MinCount=1,
                MaxCount=1,
                SubnetId=s.subnet_id,
                SecurityGroupIds=[s.security_group_id],
                IamInstanceProfile={"Arn": s.instance_profile_arn},
                MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
                InstanceInitiatedShutdownBehavior="terminate",
                # aws-assumption: ec2-tag-on-create-conditions
                TagSpecifications=[
                    {"ResourceType": "instance", "Tags": tags},
                    {"ResourceType": "volume", "Tags": tags},
                ],
            )
        except ClientError as error:
            code = _error_code(error)
            if code in CAPACITY_ERRORS:
                raise CapacityError(code, str(error)) from None
            raise
        instance = response["Instances"][0]
        return str(instance["InstanceId"]), instance["LaunchTime"]

    def readiness(self, instance_id: str) -> Readiness:
        reservations = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        instance = reservations[0]["Instances"][0]
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        statuses = self.ec2.describe_instance_status(
            InstanceIds=[instance_id], IncludeAllInstances=True
        ).get("InstanceStatuses", [])
        status = statuses[0] if statuses else {}
        return Readiness(
            state=str(instance["State"]["Name"]),
            instance_check=status.get("InstanceStatus", {}).get("Status"),
            system_check=status.get("SystemStatus", {}).get("Status"),
            attestation=tags.get(ATTESTATION_TAG_KEY),
        )

    def hang(self, instance_id: str) -> str:
        response = self.ssm.send_command(
            InstanceIds=[instance_id],
            DocumentName=self.settings.hang_document,
            Comment="crashcart canary drill: hang every CPU (the interrupt must rescue it)",
            TimeoutSeconds=600,
        )
        return str(response["Command"]["CommandId"])

    def canaries(self, execution: str | None = None) -> list[tuple[str, datetime]]:
        """This construct's live canaries (of one execution, or all)."""
        filters = [
            {"Name": f"tag:{canary.CANARY_TAG_KEY}", "Values": [self.settings.canary_tag_value]},
            {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
        ]
        if execution is not None:
            filters.append({"Name": f"tag:{canary.EXECUTION_TAG_KEY}", "Values": [execution]})
        found: list[tuple[str, datetime]] = []
        for page in self.ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page["Reservations"]:
                found += [(i["InstanceId"], i["LaunchTime"]) for i in reservation["Instances"]]
        return found

    def terminate(self, instance_ids: Iterable[str]) -> list[str]:
        ids = sorted(set(instance_ids))
        if ids:
            self.ec2.terminate_instances(InstanceIds=ids)
        return ids

    def memory_mib(self, instance_type: str) -> int | None:
        types = self.ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
        return int(types[0]["MemoryInfo"]["SizeInMiB"]) if types else None

    # -- the incident and its dump -------------------------------------------------------------
    def latest_incident(self, instance_id: str) -> IncidentFacts | None:
        items = self.dynamodb.query(
            TableName=self.settings.incident_table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": instance_pk(instance_id)},
                ":prefix": {"S": INCIDENT_PREFIX},
            },
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        ).get("Items", [])
        if not items:
            return None
        item = items[0]
        return IncidentFacts(
            state=_s(item, "state"),
            reason=_s(item, "reason"),
            interrupted_at=_time(_s(item, "interrupted_at")),
            opened_at=_time(_s(item, "opened_at")),
            dump_keys=tuple(v.get("S", "") for v in item.get("dump_keys", {}).get("L", [])),
            summary=_s(item, "summary"),
            capture_memory=_figures(item.get("capture_memory", {}).get("M", {})),
        )

    def dump_listing(self, metadata_key: str) -> tuple[int | None, datetime | None]:
        """The dump folder's size and when its metadata.json landed, from a listing (no object
        is read); ``(None, None)`` without a dump bucket."""
        if not self.settings.dump_bucket:
            return None, None
        prefix = metadata_key.rsplit("/", 1)[0] + "/"
        total, landed = 0, None
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.settings.dump_bucket, Prefix=prefix
        ):
            for item in page.get("Contents", []):
                total += int(item["Size"])
                if item["Key"] == metadata_key:
                    landed = item["LastModified"]
        return total, landed

    def notify(self, subject: str, message: str) -> None:
        self.sns.publish(TopicArn=self.settings.topic_arn, Subject=subject[:100], Message=message)


def _figures(raw: Mapping[str, Any]) -> dict[str, int]:
    """The incident's capture-memory map (DynamoDB numbers) as the figures it holds."""
    numbers: dict[str, int] = {}
    for name, value in raw.items():
        try:
            numbers[name] = int(value["N"])
        except (KeyError, TypeError, ValueError):
            continue
    return capture_memory_figures(numbers)
