"""The rejected-queue message for an event the remediation refused (guard 1).

A rejected event is kept, never dropped: :func:`rejected_message` bounds it to one SQS
message and says what was cut. Used by the remediation and the lifecycle-hold functions.
"""

from __future__ import annotations

import json

from .telemetry import encode_bounded

#: The most a rejected-queue message body may be. SQS refuses bodies over the queue's
#: MaximumMessageSize (256 KiB unless configured; aws-assumption: sqs-message-size); the
#: body is ASCII (JSON with every other character escaped), so characters = bytes.
MAX_REJECTED_BYTES = 250_000
#: A kept event nested deeper than this is kept as JSON *text*, so that a reader of the queue
#: does not hit its own parser's recursion limit (Python's json stops near 1,000 levels).
MAX_KEPT_DEPTH = 64


def rejected_message(
    event: object, *, reason: str, received_at: str, request_id: str
) -> tuple[str, dict[str, object] | None]:
    """The rejected-queue message body for ``event`` (at most :data:`MAX_REJECTED_BYTES`),
    and what was cut (None when the event is kept whole).

    The body is ``{"reason", "received_at", "request_id", "event"}`` with the event as it
    came, when its JSON fits and is at most :data:`MAX_KEPT_DEPTH` deep. Otherwise
    ``"event"`` is replaced by ``"event_text"``, the first part of the event's JSON as a
    string, and ``"event_cut"``: why, the size and SHA-256 of the whole JSON encoding (so a
    copy found elsewhere can be matched), the depth and how much was kept. Truncating (not
    storing the whole elsewhere) is deliberate: the function may write only evidence objects,
    and a hostile payload has no place next to evidence.
    """
    envelope: dict[str, object] = {
        "reason": reason,
        "received_at": received_at,
        "request_id": request_id,
    }
    head = json.dumps(envelope)
    encoded = encode_bounded(event, limit=MAX_REJECTED_BYTES - len(head) - len(', "event": '))
    if not encoded.cut and encoded.depth <= MAX_KEPT_DEPTH:
        return f'{head[:-1]}, "event": {encoded.text}}}', None
    reasons: list[str] = []
    if encoded.depth > MAX_KEPT_DEPTH:
        reasons.append(
            f"it is nested {encoded.depth} levels deep (kept as text beyond {MAX_KEPT_DEPTH})"
        )
    cut: dict[str, object] = {
        "why": "",
        "bytes": encoded.total,
        "sha256": encoded.sha256,
        "depth": encoded.depth,
        "encoding": "json.dumps defaults: ASCII, ', ' and ': ', keys as received",
    }

    def render(kept: str) -> str:
        info = {**cut, "kept_bytes": len(kept)}
        return json.dumps({**envelope, "event_cut": info, "event_text": kept})

    text = encoded.text
    cut["why"] = "; ".join(reasons)
    if encoded.cut or len(render(text)) > MAX_REJECTED_BYTES:
        reasons.append(
            f"its JSON is {encoded.total} bytes and the rejected queue keeps at most "
            f"{MAX_REJECTED_BYTES} per message (the first part is kept)"
        )
        cut["why"] = "; ".join(reasons)
    # The longest prefix whose message fits (escaping as a string can double a character).
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if len(render(text[:middle])) <= MAX_REJECTED_BYTES:
            low = middle
        else:
            high = middle - 1
    cut["kept_bytes"] = low
    return render(text[:low]), cut
