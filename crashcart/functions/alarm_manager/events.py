"""What the alarm manager is asked to do, from the event it receives (total: never raises).

Four kinds of event, each checked against the function's own account and region:

- ``EC2 Instance State-change Notification`` (``aws.ec2``): the instance in
  ``detail.instance-id`` is looked at again (aws-assumption: ec2-state-change-event);
- ``Tag Change on Resource`` (``aws.tag``, service ``ec2``, resource type ``instance``): the
  instance in ``resources[0]`` is looked at again (aws-assumption: tag-change-event);
- ``Scheduled Event`` (``aws.events``): a reconcile pass over the whole region;
- a CloudFormation custom-resource request (``RequestType`` + ``ResponseURL``): ``Delete``
  removes every alarm of the deployment, ``Create`` / ``Update`` reconcile
  (aws-assumption: cloudformation-custom-resource-protocol).

The event only says *which* instance to look at: what its alarm should be is decided from
the instance as it is *now* (``DescribeInstances``), so late, duplicated or reordered events
(a tag change delivered after the termination) cannot leave a wrong alarm behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

STATE_CHANGE = "EC2 Instance State-change Notification"
TAG_CHANGE = "Tag Change on Resource"
SCHEDULED = "Scheduled Event"
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8}(?:[0-9a-f]{9})?")
_INSTANCE_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:ec2:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):instance/"
    r"(?P<id>i-[0-9a-f]{8}(?:[0-9a-f]{9})?)"
)
_REQUEST_TYPES = ("Create", "Update", "Delete")
_SHOWN = 80


@dataclass(frozen=True, kw_only=True)
class LookAt:
    """Bring the alarms of these instances in line with the instances as they are now."""

    instance_ids: tuple[str, ...]
    why: str


@dataclass(frozen=True, kw_only=True)
class Reconcile:
    """Compare every opted-in instance with every alarm of the deployment; repair both ways."""

    why: str


@dataclass(frozen=True, kw_only=True)
class StackRequest:
    """A CloudFormation custom-resource request (the answer goes to ``response_url``)."""

    request_type: str
    response_url: str
    stack_id: str
    request_id: str
    logical_id: str
    physical_id: str | None


@dataclass(frozen=True, kw_only=True)
class Rejected:
    """Malformed or foreign: logged with the reason, kept in the rejected queue, no action."""

    reason: str


Command = LookAt | Reconcile | StackRequest | Rejected


def _show(value: object) -> str:
    if isinstance(value, str):
        return repr(value[:_SHOWN]) + ("..." if len(value) > _SHOWN else "")
    return f"<{type(value).__name__}>"


def parse(event: object, *, account: str, region: str) -> Command:
    """Classify ``event``; every malformed or foreign input becomes :class:`Rejected`."""
    try:
        return _parse(event, account, region)
    except Exception as error:  # total by contract: a bug here must not act on anything
        return Rejected(reason=f"event could not be parsed ({type(error).__name__})")


def _parse(event: object, account: str, region: str) -> Command:
    if not isinstance(event, dict):
        return Rejected(reason=f"event is a {type(event).__name__}, not an object")
    if "RequestType" in event:
        return _stack_request(event)
    source, detail_type = event.get("source"), event.get("detail-type")
    if (event.get("account"), event.get("region")) != (account, region):
        return Rejected(
            reason=f"foreign event: account {_show(event.get('account'))} region "
            f"{_show(event.get('region'))}; this function serves {account} {region}"
        )
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return Rejected(reason="event.detail is not an object")
    if source == "aws.events" and detail_type == SCHEDULED:
        return Reconcile(why="scheduled reconcile")
    if source == "aws.ec2" and detail_type == STATE_CHANGE:
        instance_id = detail.get("instance-id")
        if not isinstance(instance_id, str) or not _INSTANCE_ID.fullmatch(instance_id):
            return Rejected(reason=f"detail.instance-id {_show(instance_id)} is not an instance id")
        state = detail.get("state")
        return LookAt(instance_ids=(instance_id,), why=f"state change to {_show(state)}")
    if source == "aws.tag" and detail_type == TAG_CHANGE:
        if (detail.get("service"), detail.get("resource-type")) != ("ec2", "instance"):
            return Rejected(
                reason=f"tag change of {_show(detail.get('service'))} "
                f"{_show(detail.get('resource-type'))}, not of an EC2 instance"
            )
        resources = event.get("resources")
        if not isinstance(resources, list) or len(resources) != 1:
            return Rejected(reason="event.resources is not a list of one instance ARN")
        match = _INSTANCE_ARN.fullmatch(str(resources[0]))
        if match is None or (match["account"], match["region"]) != (account, region):
            return Rejected(
                reason=f"event.resources[0] {_show(resources[0])} is not an instance ARN of "
                f"{account} {region}"
            )
        return LookAt(instance_ids=(match["id"],), why="tag change")
    return Rejected(
        reason=f"event {_show(source)} / {_show(detail_type)} is not one this function handles"
    )


def _stack_request(event: dict[str, Any]) -> Command:
    request_type = event.get("RequestType")
    if request_type not in _REQUEST_TYPES:
        return Rejected(reason=f"RequestType {_show(request_type)} is not Create/Update/Delete")
    fields = {}
    for key in ("ResponseURL", "StackId", "RequestId", "LogicalResourceId"):
        value = event.get(key)
        if not isinstance(value, str) or not value:
            return Rejected(reason=f"custom-resource request without {key}")
        fields[key] = value
    if not fields["ResponseURL"].startswith("https://"):
        return Rejected(reason="custom-resource ResponseURL is not an https URL")
    physical = event.get("PhysicalResourceId")
    return StackRequest(
        request_type=str(request_type),
        response_url=fields["ResponseURL"],
        stack_id=fields["StackId"],
        request_id=fields["RequestId"],
        logical_id=fields["LogicalResourceId"],
        physical_id=physical if isinstance(physical, str) else None,
    )
