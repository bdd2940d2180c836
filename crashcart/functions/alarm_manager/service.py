"""The manager's passes: one instance, the whole Region, and the stack's removal.

Every pass is idempotent and decides from the instances and alarms as they are now, so a
pass cut short (the function's deadline, throttling) is finished by the next one; the
scheduled reconcile repairs whatever an event missed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

from .adapter import Alarms, Fleet, ThrottledError
from .alarms import alarm_name, alarm_spec, drifted, managed_instance, wants_alarm
from .settings import Settings

LOG = logging.getLogger("crashcart.alarm_manager")
LOG.setLevel(logging.INFO)


@dataclass
class Outcome:
    """What a pass did (logged as one JSON line and returned)."""

    put: int = 0
    deleted: int = 0
    unchanged: int = 0
    #: Alarms the pass did not get to before its deadline (or throttling): the next pass does.
    remaining: int = 0
    throttled: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def look_at(
    instance_ids: tuple[str, ...], fleet: Fleet, alarms: Alarms, settings: Settings
) -> Outcome:
    """Give each instance the alarm it should have now: put it, or delete it."""
    outcome = Outcome()
    for instance_id in instance_ids:
        name = alarm_name(settings, instance_id)
        if wants_alarm(settings, fleet.instance(instance_id)):
            alarms.put(alarm_spec(settings, instance_id))
            outcome.put += 1
        else:
            outcome.deleted += alarms.delete([name])
    outcome.throttled = alarms.throttled
    return outcome


def reconcile(
    fleet: Fleet, alarms: Alarms, settings: Settings, *, time_left: Callable[[], float]
) -> Outcome:
    """Every opted-in instance gets its alarm; every other alarm of the deployment goes.

    Deletes first (cheap: 100 a call), then puts, until ``time_left()`` falls under a safety
    margin; what is left is counted in ``remaining`` for the next pass.
    """
    outcome = Outcome()
    wanted = {
        instance.instance_id
        for instance in fleet.opted_in(settings.opt_in_tag_key, settings.opt_in_tag_value)
    }
    existing = alarms.existing()
    ours = {name: managed_instance(settings, name) for name in existing}
    stale = [name for name, instance in ours.items() if instance and instance not in wanted]
    have = {instance_id for instance_id in ours.values() if instance_id}
    to_put = sorted(wanted - have) + sorted(
        instance_id
        for name, instance_id in ours.items()
        if instance_id in wanted and drifted(settings, existing[name])
    )
    outcome.unchanged = len(wanted) - len(to_put)
    try:
        for start in range(0, len(stale), 100):
            if time_left() < _MARGIN_SECONDS:
                outcome.remaining += len(stale) - start
                break
            outcome.deleted += alarms.delete(stale[start : start + 100])
        for index, instance_id in enumerate(to_put):
            if time_left() < _MARGIN_SECONDS:
                outcome.remaining += len(to_put) - index
                break
            alarms.put(alarm_spec(settings, instance_id))
            outcome.put += 1
    except ThrottledError as error:
        outcome.remaining = len(stale) + len(to_put) - outcome.deleted - outcome.put
        LOG.warning(json.dumps({"outcome": "throttled", "error": str(error), **outcome.as_dict()}))
    outcome.throttled = alarms.throttled
    return outcome


def remove_all(alarms: Alarms, settings: Settings, *, time_left: Callable[[], float]) -> Outcome:
    """Delete every managed alarm of the deployment (the stack is being deleted)."""
    outcome = Outcome()
    names = [name for name in alarms.existing() if managed_instance(settings, name)]
    for start in range(0, len(names), 100):
        if time_left() < _MARGIN_SECONDS:
            outcome.remaining = len(names) - start
            break
        outcome.deleted += alarms.delete(names[start : start + 100])
    outcome.throttled = alarms.throttled
    return outcome


#: Stop starting new calls this many seconds before the function's deadline.
_MARGIN_SECONDS = 20.0
