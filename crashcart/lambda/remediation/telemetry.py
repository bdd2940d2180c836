"""Structured JSON logs and CloudWatch embedded-metric-format (EMF) counts, one line each.

Lambda sends stdout to CloudWatch Logs; a line with an ``_aws`` member is also turned into
metrics (namespace and names in ``settings.py``), so counting outcomes needs no extra
permission and no extra call (aws-assumption: emf-lambda-stdout).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from settings import METRIC_DIMENSION, METRIC_NAMESPACE, METRICS


class Log:
    """Writes one JSON object per call; ``context`` fields are added to every record."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        stream: TextIO | None = None,
        function_name: str = "",
        **context: object,
    ) -> None:
        self._clock = clock
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
            name = METRICS[metric]
            record[name] = 1
            record[METRIC_DIMENSION] = self.function_name or "unknown"
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
