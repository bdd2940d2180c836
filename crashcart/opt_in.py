"""The opt-in tag: the one switch that makes an instance eligible for a diagnostic interrupt.

Every part of crashcart keys off this value: the alarms are created for tagged instances, the
IAM grants are conditioned on it, the remediation function re-reads it before acting, and the
organisation guardrail protects it. It is a plain frozen value so that the same object can be
handed to every construct of a deployment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crashcart.errors import ConfigurationError

#: AWS tag limits (EC2 and the Resource Groups Tagging API): keys 1-128, values 0-256 Unicode
#: characters. EC2 allows letters, digits, spaces and ``_ . : / = + - @`` in keys and values.
MAX_KEY_LENGTH = 128
MAX_VALUE_LENGTH = 256
_ALLOWED = re.compile(r"^[\w .:/=+\-@]*\Z", re.UNICODE)
_RESERVED_PREFIX = "aws:"

DEFAULT_KEY = "crashcart:diagnostic-interrupt"
DEFAULT_VALUE = "enabled"


@dataclass(frozen=True, kw_only=True)
class OptInTag:
    """The tag an instance carries to opt in to diagnostic interrupts.

    :param key: tag key. Default: ``crashcart:diagnostic-interrupt``.
    :param value: tag value that means "opted in". Default: ``enabled``. Any other value
        (or no tag) means the instance is not eligible.
    """

    key: str = DEFAULT_KEY
    value: str = DEFAULT_VALUE

    def __post_init__(self) -> None:
        _check_tag_part("key", self.key, MAX_KEY_LENGTH, allow_empty=False)
        _check_tag_part("value", self.value, MAX_VALUE_LENGTH, allow_empty=False)
        if self.key.lower().startswith(_RESERVED_PREFIX):
            raise ConfigurationError(
                f"opt-in tag key {self.key!r}: keys starting with 'aws:' are reserved for AWS "
                "and cannot be set on instances; use your own prefix, e.g. "
                f"{DEFAULT_KEY!r}"
            )

    @property
    def condition_key(self) -> str:
        """The IAM condition key that tests this tag on the target resource."""
        return f"aws:ResourceTag/{self.key}"

    def matches(self, tags: dict[str, str]) -> bool:
        """True when ``tags`` (EC2 tags as a dict) carry this opt-in tag with its value.

        EC2 tag keys are case-sensitive, so the match is exact: an instance tagged with a key
        that differs only in case is *not* opted in here, even though IAM would compare that
        key case-insensitively. Refusing is the safe side.
        """
        return tags.get(self.key) == self.value


def _check_tag_part(what: str, text: str, limit: int, *, allow_empty: bool) -> None:
    if not isinstance(text, str):
        raise ConfigurationError(f"opt-in tag {what} must be a string, got {text!r}")
    if not text and not allow_empty:
        raise ConfigurationError(
            f"opt-in tag {what} is empty: an empty {what} cannot identify opted-in instances"
        )
    if len(text) > limit:
        raise ConfigurationError(
            f"opt-in tag {what} {text[:40]!r}... is {len(text)} characters long; "
            f"AWS allows at most {limit}"
        )
    if text != text.strip():
        raise ConfigurationError(
            f"opt-in tag {what} {text!r} has leading or trailing spaces; AWS trims them in "
            "some APIs, so the condition would never match"
        )
    if not _ALLOWED.match(text):
        raise ConfigurationError(
            f"opt-in tag {what} {text!r} has characters EC2 does not allow in tags; allowed "
            "are letters, digits, spaces and _ . : / = + - @"
        )
