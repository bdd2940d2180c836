"""The kill-switch reach function's configuration: environment -> one typed object (per call).

Names and defaults: :data:`crashcart.runtime.environment.KILL_SWITCH_REACH`.

- ``CRASHCART_KILL_SWITCH_PARAMETER`` (required): the SSM parameter; ``off`` lets alarm
  actions run, any other value stops them (the remediation function's rule).
- ``CRASHCART_ALARM_NAME_PREFIXES``: comma-separated alarm name prefixes of this deployment
  (alarms created at run time, e.g. per-instance alarms, carry one); may be empty.
- ``CRASHCART_KILL_SWITCH_TAG_KEY`` / ``CRASHCART_KILL_SWITCH_TAG_VALUE`` (value required):
  the tag every alarm of the deployment's stack carries (an Aspect puts it there at synth).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crashcart.runtime import environment as variables

DEFAULT_TAG_KEY = "crashcart:kill-switch"


class SettingsError(ValueError):
    """A configuration variable is missing or invalid (names it and what is allowed)."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    kill_switch_parameter: str
    tag_value: str
    tag_key: str = DEFAULT_TAG_KEY
    alarm_name_prefixes: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        required = (variables.KILL_SWITCH_PARAMETER, variables.KILL_SWITCH_TAG_VALUE)
        missing = [name for name in required if not environ.get(name, "").strip()]
        if missing:
            raise SettingsError(f"{', '.join(missing)} not set: required")
        prefixes = tuple(
            p.strip() for p in environ.get(variables.ALARM_NAME_PREFIXES, "").split(",")
        )
        if any(p == "" for p in prefixes) and prefixes != ("",):
            raise SettingsError(
                f"{variables.ALARM_NAME_PREFIXES}={environ[variables.ALARM_NAME_PREFIXES]!r}: "
                "an empty prefix would match every alarm of the account; give comma-separated "
                "non-empty prefixes"
            )
        return cls(
            kill_switch_parameter=environ[variables.KILL_SWITCH_PARAMETER].strip(),
            tag_key=environ.get(variables.KILL_SWITCH_TAG_KEY, "").strip() or DEFAULT_TAG_KEY,
            tag_value=environ[variables.KILL_SWITCH_TAG_VALUE].strip(),
            alarm_name_prefixes=tuple(p for p in prefixes if p),
        )
