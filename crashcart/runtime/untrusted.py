"""Text from an uploaded crash dump, made safe to quote in an incident record or a notification.

Everything an instance ships (metadata.json, dmesg.txt, the vmcore) and everything read out
of it (a panic line, a task's name, a stack frame, the triage parser's report) is written by
whoever controls that instance. It is data, never markup: before it reaches an incident
record (DynamoDB, 400 KB per item) or an on-call e-mail (SNS: the body is plain text, the
subject one line), each value goes through :func:`line`:

- **one line**: line breaks (``\\r``, ``\\n``, U+2028, U+2029, ...), other control
  characters, and the Unicode format characters that reorder or hide text (bidirectional
  overrides, zero-width characters) become a visible ``\\xNN`` / ``\\uNNNN`` escape, so a
  kernel log cannot start a new paragraph ("Action required: ...") or a mail header;
- **no links**: a URL scheme ``xxx://`` (other than ``s3://``) becomes ``xxx[:]//`` and
  ``www.`` becomes ``www[.]`` (defanged, as incident responders write them), so a mail
  client shows no clickable link that an instance put there;
- **bounded**: at most ``limit`` characters, with how much was cut said at the end.

:func:`lines` does the same for a list (a backtrace), bounded in count too. These bounds are
sized so that the largest record crashcart writes stays far below DynamoDB's item limit and
an e-mail stays readable.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Final

#: The longest untrusted value quoted in a record or a notification, unless a caller asks for less.
DEFAULT_LIMIT: Final = 400
#: The most lines (stack frames, log lines) quoted from an untrusted list.
DEFAULT_LINES: Final = 40
#: ``s3://`` is left as it is: no mail client opens it, and crashcart's own messages name
#: objects that way.
_SCHEME: Final = re.compile(r"\b(?!s3:)([A-Za-z][A-Za-z0-9+.\-]{0,30}):(/{1,2}|\\{1,2})")
_WWW: Final = re.compile(r"\b(www)\.", re.IGNORECASE)
_MAILTO: Final = re.compile(r"\b(mailto|tel|sms|data|javascript):", re.IGNORECASE)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _visible(char: str) -> str:
    """``char`` itself, or an escape when it is a control, separator or format character."""
    category = unicodedata.category(char)
    if char == "\t" or category == "Zs":  # no-break and other-width spaces: a plain one
        return " "
    # Cc: controls (incl. CR/LF, ESC); Cf: format (bidi overrides, zero-width); Zl/Zp: line
    # and paragraph separators; Cs/Co/Cn: surrogates, private use, unassigned.
    if category in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
        return _escape(char)
    return char


def defang(text: str) -> str:
    """``text`` with URL schemes and ``www.`` hosts broken so that nothing renders as a link."""
    text = _SCHEME.sub(r"\1[:]\2", text)
    text = _MAILTO.sub(r"\1[:]", text)
    return _WWW.sub(r"\1[.]", text)


def line(value: object, limit: int = DEFAULT_LIMIT, *, empty: str = "?") -> str:
    """``value`` as one bounded, printable, link-free line (``empty`` for None or blank).

    Non-strings are quoted by their ``str()`` (a metadata.json may hold a number, a list, an
    object where a string was expected: shown, not trusted). The input is cut before it is
    escaped, so a huge value costs no more than ``limit`` of work.
    """
    if value is None:
        return empty
    text = value if isinstance(value, str) else str(value)[: limit * 4]
    raw_length = len(text)
    text = text[: limit * 4]
    escaped = defang("".join(_visible(char) for char in text)).strip()
    if not escaped:
        return empty
    if len(escaped) <= limit and raw_length == len(text):
        return escaped
    cut = f" ...[{raw_length} characters, cut]"
    return escaped[: max(limit - len(cut), 1)].rstrip() + cut


def lines(
    values: Iterable[object], *, limit: int = DEFAULT_LIMIT, count: int = DEFAULT_LINES
) -> list[str]:
    """At most ``count`` values, each as :func:`line`; a last line says how many were left out."""
    out: list[str] = []
    left_out = 0
    for value in values:
        if len(out) < count:
            out.append(line(value, limit, empty=""))
        else:
            left_out += 1
            if left_out > 1_000_000:  # a generator that never ends is not counted forever
                break
    if left_out:
        out.append(f"...[{left_out} more, left out]")
    return out
