"""The event every dump consumer starts from: S3 wrote a dump's ``metadata.json``.

The agent writes ``metadata.json`` last, so its "Object Created" event (S3's EventBridge
notifications) says the dump is complete. The dump-arrival function, the triage job and the
central incident view all start from it, with this one pattern.
"""

from __future__ import annotations

from aws_cdk import aws_events as events

from crashcart.runtime.dumps import DUMPS_PREFIX, OBJECT_CREATED, S3_SOURCE


def metadata_written(bucket_name: str, *, segments: int = 2) -> events.EventPattern:
    """S3's "Object Created" event for a ``metadata.json`` under ``dumps/`` in the bucket.

    :param segments: the key segments between ``dumps/`` and ``metadata.json`` (2: instance
        and dump, in a member's bucket; 3: account first, in the central bucket). A wildcard
        spans ``/``, so the count says the least depth a key must have.
    """
    # aws-assumption: eventbridge-wildcard-spans-key-segments
    return events.EventPattern(
        source=[S3_SOURCE],
        detail_type=[OBJECT_CREATED],
        detail={
            "bucket": {"name": [bucket_name]},
            "object": {"key": [{"wildcard": f"{DUMPS_PREFIX}{'*/' * segments}metadata.json"}]},
        },
    )
