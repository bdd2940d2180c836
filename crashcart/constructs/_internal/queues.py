"""Encrypted queues: every failure path of crashcart ends in one, and one alarm watches it."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from crashcart.compliance import acknowledge


def encrypted_queue(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    dead_letter_store: str | None = None,
) -> sqs.Queue:
    """A KMS-encrypted, TLS-only queue that keeps messages 14 days (SQS's most).

    :param dead_letter_store: when the queue is itself a dead-letter store, what it holds,
        for the acknowledgement of AwsSolutions-SQS3 ("the queue has no dead-letter queue");
        None: cdk-nag sees the queue used as a dead-letter queue, nothing to acknowledge.
    """
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=cdk.Duration.days(14),
    )
    if dead_letter_store is not None:
        acknowledge(queue, "AwsSolutions::AwsSolutions-SQS3", dead_letter_store)
    return queue
