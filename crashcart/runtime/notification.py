"""What every crashcart notification must be for SNS to take it.

The subjects quote values written by instances or other functions (a kernel's panic line,
an instance id read from the table): SNS refuses a subject of 100 characters or more, or
one with line breaks, control or non-ASCII characters, and a refused publish after the
incident was written would lose the notification. aws-assumption: sns-subject-characters.
"""

from __future__ import annotations

import re
from typing import Final

#: SNS: a subject must be shorter than 100 characters.
SUBJECT_LIMIT: Final = 99
_NOT_SUBJECT: Final = re.compile(r"[^\x20-\x7e]+")


def subject(text: str, *, fallback: str = "crashcart") -> str:
    """``text`` as a subject SNS accepts: printable ASCII, stripped, at most 99 characters."""
    return _NOT_SUBJECT.sub(" ", text).strip()[:SUBJECT_LIMIT] or fallback
