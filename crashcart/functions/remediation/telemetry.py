"""Structured JSON logs and CloudWatch embedded-metric-format (EMF) counts, one line each.

Lambda sends stdout to CloudWatch Logs; a line with an ``_aws`` member is also turned into
metrics (namespace and names in ``settings.py``), so counting outcomes needs no extra
permission and no extra call (aws-assumption: emf-lambda-stdout).

:func:`encode_bounded` is the JSON encoder for values that came from outside (a rejected
event): iterative (any nesting depth, no ``RecursionError``), ASCII only, and it keeps at
most a given number of characters while measuring and hashing the whole encoding, so what is
kept is bounded and what was cut is still identified.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from .settings import METRIC_DIMENSION, METRIC_NAMESPACE, METRICS


class Log:
    """Writes one JSON object per call; ``context`` fields are added to every record."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        stream: TextIO | None = None,
        function_name: str = "",
        metrics: Mapping[str, str] | None = None,
        **context: object,
    ) -> None:
        self._clock = clock
        #: outcome -> metric name (default: the remediation's; the lifecycle hold has its own)
        self._metrics = METRICS if metrics is None else metrics
        self._stream = stream
        self.function_name = function_name
        self.context = dict(context)
        self.records: int = 0

    def _write(self, record: dict[str, object]) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        stream.write(json.dumps(record, default=str, sort_keys=True) + "\n")
        stream.flush()
        self.records += 1

    def emit(
        self, level: str, message: str, *, metric: str | None = None, **fields: object
    ) -> None:
        """Log ``message`` with ``fields``; ``metric`` (a key of ``METRICS``) adds a count of 1."""
        now = self._clock()
        record: dict[str, object] = {
            "level": level,
            "message": message,
            "timestamp": now.isoformat(),
            "service": "crashcart-remediation",
            **self.context,
            **fields,
        }
        if metric is not None:
            name = self._metrics[metric]
            record[name] = 1
            record[METRIC_DIMENSION] = self.function_name or "unknown"
            # aws-assumption: emf-log-metrics
            record["_aws"] = {
                "Timestamp": int(now.timestamp() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": METRIC_NAMESPACE,
                        "Dimensions": [[METRIC_DIMENSION]],
                        "Metrics": [{"Name": name, "Unit": "Count"}],
                    }
                ],
            }
        self._write(record)

    def info(self, message: str, *, metric: str | None = None, **fields: object) -> None:
        self.emit("INFO", message, metric=metric, **fields)

    def warning(self, message: str, *, metric: str | None = None, **fields: object) -> None:
        self.emit("WARNING", message, metric=metric, **fields)

    def error(self, message: str, *, metric: str | None = None, **fields: object) -> None:
        self.emit("ERROR", message, metric=metric, **fields)


# ----------------------------------------------------------------------------------------------
# Bounded, recursion-free JSON encoding of untrusted values.


@dataclass(frozen=True, kw_only=True)
class Encoded:
    """The (possibly cut) JSON encoding of a value, and what identifies the whole of it."""

    #: The first ``limit`` characters of the encoding (all of it when ``cut`` is False).
    text: str
    #: Length of the whole encoding (ASCII: characters = bytes).
    total: int
    #: SHA-256 (hex) of the whole encoding.
    sha256: str
    #: Deepest nesting of objects and arrays.
    depth: int
    cut: bool


class _Close:
    """A closing bracket on the work stack (with the container it closes)."""

    __slots__ = ("container", "text")

    def __init__(self, text: str, container: int) -> None:
        self.text = text
        self.container = container


class _Text(str):
    """A literal piece of output on the work stack (separators, keys)."""

    __slots__ = ()


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        # Python refuses to print ints of more than 4,300 digits; JSON never carries such.
        if value.bit_length() > 256:
            return json.dumps(f"<int of {value.bit_length()} bits>")
        return str(value)
    if isinstance(value, float):
        return json.dumps(value) if math.isfinite(value) else json.dumps(repr(value))
    return json.dumps(f"<{type(value).__name__}>")


def _json_pieces(value: object, depth: list[int]) -> Iterator[str]:
    """The JSON text of ``value`` piece by piece, as ``json.dumps(value)`` would write it for
    JSON values (``", "`` and ``": "`` separators, keys in order, ASCII); ``depth[0]`` ends
    as the deepest nesting seen. Uses its own stack, never Python's."""
    todo: list[object] = [value]
    open_containers: set[int] = set()
    level = 0
    while todo:
        item = todo.pop()
        if isinstance(item, _Text):
            yield str(item)
            continue
        if isinstance(item, _Close):
            level -= 1
            open_containers.discard(item.container)
            yield item.text
            continue
        if isinstance(item, dict | list | tuple):
            if not item:
                yield "{}" if isinstance(item, dict) else "[]"
                continue
            if id(item) in open_containers:  # a cycle (a Python value, never JSON)
                yield json.dumps("<cycle>")
                continue
            open_containers.add(id(item))
            level += 1
            depth[0] = max(depth[0], level)
            if isinstance(item, dict):
                yield "{"
                todo.append(_Close("}", id(item)))
                entries = list(item.items())
                for index in range(len(entries) - 1, -1, -1):
                    key, sub = entries[index]
                    todo.append(sub)
                    name = key if isinstance(key, str) else _scalar(key).strip('"')
                    todo.append(_Text(json.dumps(name) + ": "))
                    if index:
                        todo.append(_Text(", "))
            else:
                yield "["
                todo.append(_Close("]", id(item)))
                for index in range(len(item) - 1, -1, -1):
                    todo.append(item[index])
                    if index:
                        todo.append(_Text(", "))
            continue
        yield _scalar(item)


def encode_bounded(value: object, *, limit: int) -> Encoded:
    """JSON of ``value`` keeping at most ``limit`` characters; the whole is measured and hashed.

    Never raises and never recurses, whatever ``value`` is (nesting depth, size, cycles,
    non-JSON Python objects, which are written as ``"<type>"``).
    """
    digest = hashlib.sha256()
    kept: list[str] = []
    room = limit
    total = 0
    depth = [0]
    for piece in _json_pieces(value, depth):
        data = piece.encode("ascii")
        digest.update(data)
        total += len(data)
        if room > 0:
            kept.append(piece[:room])
            room -= min(room, len(piece))
    return Encoded(
        text="".join(kept),
        total=total,
        sha256=digest.hexdigest(),
        depth=depth[0],
        cut=total > limit,
    )
