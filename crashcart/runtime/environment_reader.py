"""Reading a unit's environment contract: text, whole numbers and switches, one way.

A unit's table in :mod:`crashcart.runtime.environment` maps each variable to its default
(``None``: required); :class:`EnvironmentReader` reads ``environ`` against it and raises the
unit's own settings error, naming the variable and what is allowed, before any AWS call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_DIGITS = re.compile(r"[0-9]{1,10}")  # fullmatch: "$" would accept a trailing newline


def require(environ: Mapping[str, str], names: Iterable[str], error: type[Exception]) -> None:
    """Raise ``error`` naming every variable of ``names`` that is unset or empty."""
    missing = [name for name in names if not environ.get(name)]
    if missing:
        raise error(f"missing environment variables: {', '.join(missing)}")


class EnvironmentReader:
    """The variables of ``environ``, with the defaults of a unit's table.

    :param defaults: variable name -> default (``None``: required).
    :param error: the exception to raise (the unit's settings error).
    :param allow_empty: an empty value counts as given (otherwise a required text that is
        empty is an error, like a missing one).
    """

    def __init__(
        self,
        environ: Mapping[str, str],
        defaults: Mapping[str, str | None],
        error: type[Exception],
        *,
        allow_empty: bool = False,
    ) -> None:
        self._environ = environ
        self._defaults = defaults
        self._error = error
        self._allow_empty = allow_empty

    def text(self, name: str) -> str:
        """The value, stripped; the default when unset; an error when required and unset."""
        value = self._environ.get(name)
        if value is None:
            default = self._defaults[name]
            if default is None:
                raise self._error(f"{name} is not set: it is required")
            return default
        if not self._allow_empty and not value.strip():
            raise self._error(f"{name} is empty: it is required")
        return value.strip()

    def optional(self, name: str) -> str:
        """A variable whose empty value means "off" (its default)."""
        return self._environ.get(name, self._defaults[name] or "").strip()

    def integer(self, name: str) -> int:
        """A whole number of 0 or more (at most ten digits)."""
        value = self.text(name)
        if not _DIGITS.fullmatch(value):
            raise self._error(f"{name}={value!r}: expected a whole number of 0 or more")
        return int(value)

    def boolean(self, name: str) -> bool:
        """``true`` or ``false`` (any case)."""
        value = self.text(name).lower()
        if value not in ("true", "false"):
            raise self._error(f"{name}={value!r}: expected 'true' or 'false'")
        return value == "true"
