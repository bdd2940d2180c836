"""The lifecycle-hold function's configuration: environment variables -> one validated object.

The function is configured with every variable of the remediation function (its own
interrupt of an impaired terminating instance goes through the remediation's guards, which
read the same variables) plus these:

=====================================  ========  ==================================================
variable                               default   meaning
=====================================  ========  ==================================================
``CRASHCART_HOLD_GROUPS``              ``""``    comma-separated Auto Scaling group names whose
                                                 termination hook this function answers; an
                                                 event of any other group is rejected (kept)
``CRASHCART_HOLD_HOOK_NAME``           required  the lifecycle hook's name (the same in each group)
``CRASHCART_HOLD_HEARTBEAT_SECONDS``   ``600``   the hook's heartbeat timeout (30-7200)
``CRASHCART_DUMP_BASE_SECONDS``        ``900``   dump deadline: this, plus
``CRASHCART_DUMP_SECONDS_PER_GIB``     ``30``    this per GiB of the instance's memory,
``CRASHCART_DUMP_MAX_SECONDS``         ``7200``  capped here (and at the hook's own limit)
``CRASHCART_ESCALATION_REBOOT``        ``true``  reboot an interrupted instance still impaired
                                                 at its dump deadline
=====================================  ========  ==================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from crashcart.functions.remediation.settings import Settings as RemediationSettings
from crashcart.functions.remediation.settings import SettingsError
from crashcart.runtime import environment as variables
from crashcart.runtime.environment_reader import EnvironmentReader

__all__ = ["ENVIRONMENT", "HoldSettings", "Settings", "SettingsError"]

#: Environment variable name -> default (``None``: required).
ENVIRONMENT: Final = variables.LIFECYCLE_HOLD

# aws-assumption: lifecycle-hook-heartbeat-limits
MIN_HEARTBEAT_SECONDS: Final = 30
MAX_HEARTBEAT_SECONDS: Final = 7_200
#: A lifecycle action can be held at most 48 hours or 100 heartbeat timeouts (the lesser).
GLOBAL_HOLD_SECONDS: Final = 48 * 3_600
GLOBAL_HOLD_HEARTBEATS: Final = 100

# aws-assumption: lifecycle-hook-heartbeat-limits
_GROUP_NAME = re.compile(r"[\x20-\x7e]{1,255}")


@dataclass(frozen=True, kw_only=True)
class HoldSettings:
    """The hold's and the escalation's own settings (see the module docstring)."""

    hook_name: str
    groups: frozenset[str] = frozenset()
    heartbeat_seconds: int = 600
    dump_base_seconds: int = 900
    dump_seconds_per_gib: int = 30
    dump_max_seconds: int = 7_200
    escalation_reboot: bool = True

    @property
    def longest_hold_seconds(self) -> int:
        """The most Auto Scaling lets one lifecycle action be held."""
        return min(GLOBAL_HOLD_SECONDS, GLOBAL_HOLD_HEARTBEATS * self.heartbeat_seconds)

    def __post_init__(self) -> None:
        if not self.hook_name.strip():
            raise SettingsError("hook_name is empty: it is required")
        for group in self.groups:
            if not _GROUP_NAME.fullmatch(group):
                raise SettingsError(
                    f"Auto Scaling group name {group!r}: expected 1-255 printable characters"
                )
        if not MIN_HEARTBEAT_SECONDS <= self.heartbeat_seconds <= MAX_HEARTBEAT_SECONDS:
            raise SettingsError(
                f"heartbeat_seconds={self.heartbeat_seconds}: a lifecycle hook's heartbeat "
                f"timeout is {MIN_HEARTBEAT_SECONDS}-{MAX_HEARTBEAT_SECONDS} s"
            )
        if self.dump_seconds_per_gib < 0 or self.dump_base_seconds < 1:
            raise SettingsError(
                f"dump_base_seconds={self.dump_base_seconds} and dump_seconds_per_gib="
                f"{self.dump_seconds_per_gib}: the base must be at least 1, the rate at least 0"
            )
        if not self.dump_base_seconds <= self.dump_max_seconds <= self.longest_hold_seconds:
            raise SettingsError(
                f"dump_max_seconds={self.dump_max_seconds}: must be at least the base "
                f"({self.dump_base_seconds}) and at most {self.longest_hold_seconds} s, the "
                "longest Auto Scaling holds a lifecycle action (48 h or 100 heartbeat "
                "timeouts, the lesser)"
            )


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The remediation's settings (for the guards) and the hold's."""

    remediation: RemediationSettings
    hold: HoldSettings

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Parse ``environ``; raise :class:`SettingsError` naming the bad variable."""
        read = EnvironmentReader(environ, ENVIRONMENT, SettingsError, allow_empty=True)
        text, integer = read.text, read.integer
        reboot = read.boolean(variables.ESCALATION_REBOOT)
        groups = frozenset(g.strip() for g in text(variables.HOLD_GROUPS).split(",") if g.strip())
        return cls(
            remediation=RemediationSettings.from_env(environ),
            hold=HoldSettings(
                hook_name=text(variables.HOLD_HOOK_NAME),
                groups=groups,
                heartbeat_seconds=integer(variables.HOLD_HEARTBEAT_SECONDS),
                dump_base_seconds=integer(variables.DUMP_BASE_SECONDS),
                dump_seconds_per_gib=integer(variables.DUMP_SECONDS_PER_GIB),
                dump_max_seconds=integer(variables.DUMP_MAX_SECONDS),
                escalation_reboot=reboot,
            ),
        )
