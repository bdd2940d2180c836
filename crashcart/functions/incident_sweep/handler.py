"""Lambda entry point of the overdue sweep (``handler.handler``): thin on purpose.

Settings from the environment (per call), boto3 clients created once per container, then the
two parts of :mod:`service`: the overdue sweep and, when enabled, the attestation census.
AWS calls made: ``dynamodb:Scan`` / ``UpdateItem``, ``sns:Publish``, ``ec2:DescribeInstances``
(census), plus KMS on the keys.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import boto3

from .adapter import CensusFailedError, Fleet, Store, StoreUnavailableError, sns_publisher
from .service import LOG, SweepFailedError, census, sweep
from .settings import Settings

#: Per-container state: the boto3 clients survive warm invocations.
_CONTAINER: dict[str, Any] = {}


def _clients() -> dict[str, Any]:
    if not _CONTAINER:
        _CONTAINER.update(
            dynamodb=boto3.client("dynamodb"), sns=boto3.client("sns"), ec2=boto3.client("ec2")
        )
    return _CONTAINER


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env(os.environ)
    now = datetime.now(UTC)
    clients = _clients()
    store = Store(clients["dynamodb"], settings.table_name, max_pages=settings.max_pages)
    publish = sns_publisher(clients["sns"], settings.topic_arn)
    failure: Exception | None = None
    result: dict[str, Any] = {}
    try:
        result = sweep(store, publish, now=now, parameter_name=settings.parameter_name).as_dict()
    except (SweepFailedError, StoreUnavailableError) as error:
        failure = error  # the census still runs; the failure is raised after it
    if settings.census:
        function_name = str(getattr(context, "function_name", "") or "")
        try:
            fleet = Fleet(clients["ec2"], max_pages=settings.max_pages)
            result["attestation"] = census(
                fleet, settings, now=now, function_name=function_name
            ).as_dict()
        except CensusFailedError as error:
            LOG.error(json.dumps({"outcome": "census-failed", "error": str(error)}))
            failure = failure or error
    if failure is not None:
        raise failure
    return result
