"""EventBridge between accounts, for moto tests: one ``PutEvents`` to another account's bus.

moto's PutEvents cannot take another account's bus ARN, and it stamps a delivered event
with the receiving account, where EventBridge puts the sender's
(aws-assumption: eventbridge-envelope-account-is-the-sender). :class:`EventBridgeHop` stands
in for the sender's ``events`` client: it checks each request against botocore's model of
PutEvents (what boto3 would send), keeps the entries, answers as EventBridge does, and hands
each entry out as the event a rule on the target bus receives (envelope account = sender,
region = the bus's). It can also refuse an entry or fail the call, as a bus policy or an
outage would.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from botocore.exceptions import ClientError
from botocore.validate import validate_parameters

_INPUT = (
    botocore.session.get_session()
    .get_service_model("events")
    .operation_model("PutEvents")
    .input_shape
)


@dataclass
class EventBridgeHop:
    sender: str
    sent: list[dict[str, Any]] = field(default_factory=list)
    #: None: accept; "entry": refuse every entry (FailedEntryCount); "call": raise.
    fail: str | None = None

    def put_events(self, **request: Any) -> dict[str, Any]:
        validate_parameters(request, _INPUT)
        if self.fail == "call":
            raise ClientError(
                {"Error": {"Code": "InternalException", "Message": "try again"}}, "PutEvents"
            )
        if self.fail == "entry":
            entry = {"ErrorCode": "AccessDeniedException", "ErrorMessage": "not authorized"}
            return {"FailedEntryCount": len(request["Entries"]), "Entries": [entry]}
        answers = []
        for entry in request["Entries"]:
            self.sent.append(entry)
            answers.append({"EventId": str(uuid.uuid4())})
        return {"FailedEntryCount": 0, "Entries": answers}

    def delivered(self, bus_arn: str) -> list[dict[str, Any]]:
        """The events a rule on ``bus_arn`` receives, as EventBridge delivers them."""
        region = bus_arn.split(":")[3]
        return [
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": entry["DetailType"],
                "source": entry["Source"],
                "account": self.sender,
                "time": "2026-12-05T22:06:01Z",
                "region": region,
                "resources": entry.get("Resources", []),
                "detail": json.loads(entry["Detail"]),
            }
            for entry in self.sent
            if entry.get("EventBusName") == bus_arn
        ]
