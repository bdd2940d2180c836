"""The missed-alarm sweep: a scheduled pass of the remediation function over impaired instances.

An alarm emits one event per state change. An event that is lost, throttled, refused by a
transient fault, or skipped by a guard that later clears (kill switch, breaker, boot grace)
is never sent again, while the instance stays hung and its alarm sits in ALARM. This pass
closes that gap without the alarms: it asks EC2 directly which instances are impaired now
(``DescribeInstanceStatus`` filtered on ``instance-status.status = impaired``: no
100-contributor or 10,000-metric ceiling), keeps the opted-in ones, and hands each one that
has no open incident, or whose incident went stale, to the *same* decision code as an alarm
event (:meth:`Remediation.remediate_missed` -> ``_remediate``): the kill switch, every guard,
the cooldown, the daily budget and the breaker all apply, through the same claim transaction.

Why a mode of the remediation function and not a function of its own: the decision must be
the remediation's, with the remediation's settings and rights. A second function would need
a second copy of its 20 settings (which can drift) and a second role holding
``ec2:SendDiagnosticInterrupt``; one role with that right is what the operator policy, the
SCP guardrail and the reviews reason about. The pass is bounded to fit the same timeout.

The pass, in order (each step a bound or a guard):

1. the kill switch: not ``off`` -> nothing is listed, nothing is recorded;
2. the fleet breaker: open -> nothing is fed (feeding would count as new ALARMs, and the
   breaker would never go quiet); an availability zone's open breaker skips its instances;
3. ``DescribeInstanceStatus`` pages of up to 1,000 (``MaxResults``), at most
   ``missed_sweep_max_pages`` of them, :data:`PAGE_INTERVAL_SECONDS` apart (rate limit);
4. ``DescribeInstances`` filtered on those ids and the opt-in tag, 200 ids a call;
5. for each opted-in impaired instance, the latest incident (one Query): fed when there is
   none since the impairment began, or when it is older than ``missed_sweep_stale_seconds``
   (:func:`trigger_time`; not an incident a guard refused for good, see
   :data:`NEVER_CLEARS_WHILE_HUNG`); at most ``missed_sweep_max_per_pass`` fed, and none once less
   than :data:`MIN_REMAINING_MS` of the invocation is left.

Idempotent across overlapping passes: the incident a pass opens is keyed by a time both
passes derive from what they both read (the instance's ``ImpairedSince``, or the stale
incident's ``updated_at`` plus the stale window), so the second pass finds the first's
incident and answers "duplicate"; and even where the keys differ (a missing
``ImpairedSince`` at a window boundary), the claim transaction on the instance's limits
item still allows one interrupt per cooldown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crashcart.runtime.incident import State, parse_time
from crashcart.runtime.paging import next_page

from .adapter import FactUnavailableError
from .claims import StoreUnavailableError
from .decision import BreakerState, Guard
from .events import iso

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

    from .service import Remediation

#: The schedule rule's input that starts a pass (``{"crashcart-action": "missed-alarm-sweep"}``).
TRIGGER_KEY = "crashcart-action"
TRIGGER_VALUE = "missed-alarm-sweep"
#: DescribeInstanceStatus answers at most 1,000 statuses a page when no ids are given.
#: aws-assumption: describe-instance-status-impaired-filter
PAGE_SIZE = 1000
#: Pause between two DescribeInstanceStatus pages (a pass reads at most 2 pages a second).
PAGE_INTERVAL_SECONDS = 0.5
#: Pause between two instances fed to the decision (each makes a handful of EC2 calls).
FEED_INTERVAL_SECONDS = 0.2
#: Instance ids per DescribeInstances call (a filter takes at most 200 values).
#: aws-assumption: ec2-describe-filter-values
IDS_PER_CALL = 200
#: Guards whose "no" cannot change while the instance stays hung: the instance type cannot
#: take the interrupt, a hung guest cannot attest kdump, the alarm's account or region is not
#: ours. A stale incident refused by one of them is not decided again (each decision counts
#: as a new ALARM in the breakers: re-deciding hopeless instances every pass could open the
#: fleet breaker and block the interrupts that can help).
NEVER_CLEARS_WHILE_HUNG = frozenset({Guard.CAPABILITY, Guard.ATTESTATION, Guard.ACCOUNT_REGION})
#: Feed no instance once less than this is left of the invocation (one decision's worst case:
#: describes, the claim, the evidence, the interrupt with its throttle backoff, the records).
MIN_REMAINING_MS = 20_000


def is_trigger(event: object) -> bool:
    """True for the schedule rule's input that starts a pass."""
    return isinstance(event, dict) and event.get(TRIGGER_KEY) == TRIGGER_VALUE


@dataclass(frozen=True, kw_only=True)
class Impaired:
    """An instance ``DescribeInstanceStatus`` lists with an impaired instance check."""

    instance_id: str
    availability_zone: str
    impaired_since: datetime | None


class ImpairedInstances:
    """The listing calls of a pass, over the function's EC2 client (paced, bounded)."""

    def __init__(self, client: EC2Client, sleep: Callable[[float], None]) -> None:
        self._client = client
        self._sleep = sleep
        #: Why the last :meth:`pages` stopped before the end (None: it read them all).
        self.truncated: str | None = None

    def pages(self, max_pages: int) -> Iterator[list[Impaired]]:
        """Pages of running instances whose instance status check is impaired.

        Raises :class:`FactUnavailableError` when EC2 cannot be read.
        """
        self.truncated = None
        # aws-assumption: describe-instance-status-impaired-filter
        arguments: dict[str, Any] = {
            "Filters": [
                {"Name": "instance-status.status", "Values": ["impaired"]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ],
            "MaxResults": PAGE_SIZE,
        }
        for page in range(max_pages):
            if page:
                self._sleep(PAGE_INTERVAL_SECONDS)
            try:
                response = self._client.describe_instance_status(**arguments)
            except (ClientError, BotoCoreError) as error:
                raise FactUnavailableError(f"DescribeInstanceStatus (sweep): {error}") from error
            found: list[Impaired] = []
            for raw in response.get("InstanceStatuses", []):
                instance_id = str(raw.get("InstanceId", ""))
                if not instance_id:
                    continue
                since = None
                for detail in raw.get("InstanceStatus", {}).get("Details", []):
                    if detail.get("Name") == "reachability" and detail.get("ImpairedSince"):
                        since = detail["ImpairedSince"]
                found.append(
                    Impaired(
                        instance_id=instance_id,
                        availability_zone=str(raw.get("AvailabilityZone", "")),
                        impaired_since=since,
                    )
                )
            yield found
            if not next_page(response, arguments):
                return
        self.truncated = f"more than {max_pages} pages of impaired instances"

    def opted_in(self, instance_ids: list[str], tag_key: str, tag_value: str) -> set[str]:
        """Those of ``instance_ids`` that carry the opt-in tag now (server-side filters)."""
        chosen: set[str] = set()
        for start in range(0, len(instance_ids), IDS_PER_CALL):
            arguments: dict[str, Any] = {
                "Filters": [
                    {"Name": "instance-id", "Values": instance_ids[start : start + IDS_PER_CALL]},
                    {"Name": f"tag:{tag_key}", "Values": [tag_value]},
                ],
                "MaxResults": 1000,
            }
            while True:
                try:
                    response = self._client.describe_instances(**arguments)
                except (ClientError, BotoCoreError) as error:
                    raise FactUnavailableError(f"DescribeInstances (sweep): {error}") from error
                for reservation in response.get("Reservations", []):
                    for raw in reservation.get("Instances", []):
                        chosen.add(str(raw.get("InstanceId", "")))
                if not next_page(response, arguments):
                    break
        return chosen


def trigger_time(
    latest: dict[str, Any] | None,
    impaired_since: datetime | None,
    *,
    now: datetime,
    stale_seconds: int,
) -> tuple[str | None, str]:
    """The ``opened_at`` of the incident to open for an impaired instance, or None, and why.

    - no incident since the impairment began (none at all, or the latest opened before
      ``impaired_since``): open one at ``impaired_since`` (the alarm event was missed);
    - the latest incident not updated for ``stale_seconds``: open one at its ``updated_at``
      plus ``stale_seconds`` (a guard may have cleared; the decision runs again);
    - otherwise: None (an open incident, recent enough: the alarm path has it).

    Pure, and deterministic in what two overlapping passes both read.
    """
    if impaired_since is not None:
        since = iso(impaired_since)
    else:
        # No ImpairedSince: a window start, so passes within one window agree.
        epoch = int(now.timestamp())
        since = iso(datetime.fromtimestamp(epoch - epoch % stale_seconds, tz=UTC))
    if latest is None:
        return since, "no incident: the alarm event never arrived"
    opened_at = str(latest.get("opened_at", {}).get("S", ""))
    state = str(latest.get("state", {}).get("S", ""))
    if opened_at < since:
        return since, f"latest incident opened {opened_at} ({state}), before this impairment"
    updated_text = str(latest.get("updated_at", {}).get("S", "")) or opened_at
    try:
        updated = parse_time(updated_text)
    except ValueError:
        return None, f"latest incident has an unreadable updated_at {updated_text[:40]!r}"
    due = updated + timedelta(seconds=stale_seconds)
    if due > now:
        return None, f"open incident {opened_at} ({state}) updated {updated_text}: not stale"
    guard = str(latest.get("guard", {}).get("S", ""))
    if state == State.SKIPPED and guard in NEVER_CLEARS_WHILE_HUNG:
        return None, (
            f"incident {opened_at} was skipped by guard {guard}, which cannot change while the "
            "instance stays hung: not decided again"
        )
    # A claim left by a crashed invocation (state claimed) holds the cooldown: deciding
    # again is safe, as for every other state.
    return iso(due), f"incident {opened_at} ({state}) not updated since {updated_text}: stale"


def breaker_blocks(state: BreakerState, *, quiet_seconds: int, now_epoch: int) -> bool:
    """True while a breaker is open and has not been quiet for ``quiet_seconds``."""
    if state.opened_epoch is None:
        return False
    last = state.last_alarm_epoch if state.last_alarm_epoch is not None else state.opened_epoch
    return now_epoch - last < quiet_seconds


@dataclass
class PassResult:
    """What one pass did (the function's return value)."""

    outcome: str = "swept"
    reason: str = ""
    impaired: int = 0
    opted_in: int = 0
    fed: list[dict[str, str]] = field(default_factory=list)
    left: dict[str, str] = field(default_factory=dict)  # instance -> why not fed
    truncated: str | None = None
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "impaired": self.impaired,
            "opted_in": self.opted_in,
            "fed": self.fed,
            "left": self.left,
            "truncated": self.truncated,
            "errors": self.errors,
        }


class SweepFailedError(RuntimeError):
    """Some instances could not be decided: raised after the rest (Lambda retries the pass)."""


def run_pass(
    remediation: Remediation,
    lister: ImpairedInstances,
    *,
    remaining_ms: Callable[[], int],
) -> PassResult:
    """One pass (see the module docstring). Raises when a fact cannot be established before
    feeding starts (kill switch, EC2 listing, breakers), and :class:`SweepFailedError` after
    the pass when some instances failed (each failure is also logged)."""
    settings = remediation.settings
    log = remediation.log
    now = remediation.clock()
    now_epoch = int(now.timestamp())
    result = PassResult()
    kill = remediation.kill_switch.value()
    if kill != "off":
        result.outcome = "stopped"
        result.reason = (
            f"kill switch {settings.kill_switch_parameter} is {kill!r}: the sweep does nothing"
        )
        log.info("missed-alarm sweep stopped", outcome="stopped", reason=result.reason)
        return result
    store = remediation.store
    if breaker_blocks(
        store.breaker(None), quiet_seconds=settings.breaker_quiet_seconds, now_epoch=now_epoch
    ):
        result.outcome = "stopped"
        result.reason = (
            "the fleet circuit breaker is open: the sweep feeds nothing until it closes "
            "(feeding would count as new ALARMs and keep it open)"
        )
        log.warning("missed-alarm sweep stopped", outcome="stopped", reason=result.reason)
        return result
    zones: dict[str, bool] = {}
    budget = settings.missed_sweep_max_per_pass
    started = time.monotonic()
    for page in lister.pages(settings.missed_sweep_max_pages):
        result.impaired += len(page)
        if not page:
            continue
        chosen = lister.opted_in(
            [i.instance_id for i in page], settings.opt_in_tag_key, settings.opt_in_tag_value
        )
        for impaired in page:
            if impaired.instance_id not in chosen:
                continue
            result.opted_in += 1
            if len(result.fed) >= budget:
                result.truncated = result.truncated or f"more than {budget} instances to feed"
                result.left[impaired.instance_id] = "per-pass bound reached"
                continue
            if remaining_ms() < MIN_REMAINING_MS:
                result.truncated = result.truncated or "the invocation's time is nearly up"
                result.left[impaired.instance_id] = "time bound reached"
                continue
            zone = impaired.availability_zone
            if zone and zone not in zones:
                zones[zone] = breaker_blocks(
                    store.breaker(zone),
                    quiet_seconds=settings.breaker_quiet_seconds,
                    now_epoch=now_epoch,
                )
            if zone and zones[zone]:
                result.left[impaired.instance_id] = f"circuit breaker of {zone} is open"
                continue
            _feed(remediation, impaired, result, now=remediation.clock())
    result.truncated = lister.truncated or result.truncated
    if result.truncated:
        log.warning(
            "missed-alarm sweep stopped early",
            metric="sweep_truncated",
            outcome="truncated",
            reason=result.truncated,
        )
    log.info(
        "missed-alarm sweep done",
        outcome=result.outcome,
        impaired=result.impaired,
        opted_in=result.opted_in,
        fed=len(result.fed),
        seconds=round(time.monotonic() - started, 3),
    )
    if result.errors:
        raise SweepFailedError(f"{len(result.errors)} instance(s) failed: {result.errors}")
    return result


def _feed(
    remediation: Remediation, impaired: Impaired, result: PassResult, *, now: datetime
) -> None:
    from .service import ClaimContentionError  # the service imports this module

    instance_id = impaired.instance_id
    settings = remediation.settings
    try:
        latest = remediation.store.latest_incident(instance_id)
        opened_at, why = trigger_time(
            latest,
            impaired.impaired_since,
            now=now,
            stale_seconds=settings.missed_sweep_stale_seconds,
        )
        if opened_at is None:
            result.left[instance_id] = why
            return
        if result.fed:
            remediation.sleep(FEED_INTERVAL_SECONDS)
        remediation.log.warning(
            "missed-alarm sweep found an impaired instance to decide",
            metric="sweep_found",
            outcome="sweep-found",
            reason=why,
            instance_id=instance_id,
            opened_at=opened_at,
        )
        outcome = remediation.remediate_missed(instance_id, opened_at=opened_at, reason=why)
        result.fed.append(
            {"instance_id": instance_id, "outcome": outcome.outcome, "reason": outcome.reason}
        )
    except (FactUnavailableError, StoreUnavailableError, ClaimContentionError) as error:
        result.errors.append(f"{instance_id}: {error}")
        remediation.log.error(
            "missed-alarm sweep could not decide an instance",
            instance_id=instance_id,
            error=str(error),
        )
