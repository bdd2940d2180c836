"""Reading the first bytes of an S3 object through an injected client (standard library only).

The dump-arrival function and the triage job read small files a dump ships with
(``metadata.json``, ``dmesg.txt``) the same way: a ranged GET, where a missing object (or an
empty one, which has no byte 0) is an answer (None) and any other error propagates.
"""

from __future__ import annotations

from typing import Any, Final

#: Error codes that mean "there is no such object (or byte range)".
MISSING: Final = frozenset({"NoSuchKey", "404", "InvalidRange"})


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (duck-typed: no botocore import)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return code if isinstance(code, str) else None


def read_head(s3: Any, bucket: str, key: str, limit: int) -> bytes | None:
    """At most ``limit`` bytes from the start of ``s3://bucket/key``; None when it is missing.

    AccessDenied is not "missing": it propagates (a deployment fault: KMS, bucket or
    endpoint policy), so the event is retried and kept.
    """
    try:
        response = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{limit - 1}")
    except Exception as error:
        if error_code(error) in MISSING:
            return None
        raise
    data: bytes = response["Body"].read()
    return data
