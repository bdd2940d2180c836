"""The triage job's AWS calls (the supervisor's only): injected clients, nothing decided here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crashcart.runtime.dumps import DumpKey
from crashcart.runtime.incident import INCIDENT_PREFIX
from crashcart.runtime.notification import subject as sns_subject
from crashcart.runtime.objects import read_head
from crashcart.triage.job_input import Settings


class Adapter:
    """AWS calls, with injected clients (boto3's, or Stubbers' in tests)."""

    def __init__(self, settings: Settings, s3: Any, dynamodb: Any, sns: Any) -> None:
        self.settings = settings
        self.s3 = s3
        self.dynamodb = dynamodb
        self.sns = sns

    def read_small(self, bucket: str, key: str, limit: int) -> bytes | None:
        """The first ``limit`` bytes of an object; None when it is missing (AccessDenied is
        not "missing": the event just said the object was created, so a 403 is a deployment
        fault; it propagates and the run is kept in the failed-runs queue)."""
        return read_head(self.s3, bucket, key, limit)

    def size_of(self, bucket: str, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            response = self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        return int(response["ContentLength"])

    def download(self, bucket: str, key: str, target: Path) -> None:
        self.s3.download_file(bucket, key, str(target))

    def put_report(self, key: str, body: str, content_type: str) -> None:
        self.s3.put_object(
            Bucket=self.settings.dump_bucket,
            Key=key,
            Body=body.encode("utf-8"),
            ContentType=content_type,
        )

    def incident_linking(self, dump: DumpKey) -> str | None:
        """The sort key of the incident whose dump_keys include this metadata.json."""
        response = self.dynamodb.query(
            TableName=self.settings.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            FilterExpression="contains(dump_keys, :key)",
            ExpressionAttributeValues={
                ":pk": {"S": dump.incident_pk},
                ":prefix": {"S": INCIDENT_PREFIX},
                ":key": {"S": dump.key},
            },
            ScanIndexForward=False,
            ConsistentRead=True,
        )
        items = response.get("Items") or []
        return str(items[0]["sk"]["S"]) if items else None

    def record(self, dump: DumpKey, sk: str, values: dict[str, Any]) -> None:
        names = {f"#{name}": name for name in values}
        self.dynamodb.update_item(
            TableName=self.settings.table_name,
            Key={"pk": {"S": dump.incident_pk}, "sk": {"S": sk}},
            UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in values),
            ConditionExpression="attribute_exists(pk) AND contains(dump_keys, :dump_key)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={
                **{f":{name}": _attribute(value) for name, value in values.items()},
                ":dump_key": {"S": dump.key},
            },
        )

    def notify(self, subject: str, message: str) -> None:
        self.sns.publish(
            TopicArn=self.settings.topic_arn, Subject=sns_subject(subject), Message=message
        )


def _attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, list):
        return {"L": [{"S": str(item)} for item in value]}
    return {"S": str(value)}
