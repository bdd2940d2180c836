"""The circuit-breaker step shared by every breaker: the fleet and zone breakers of one
account (items in the incident table, written by the claim transaction, ``claims.py``) and
the organisation breaker (one item in the central account's table, ``org_breaker.py``).

A breaker counts events in a window; the event that makes the count reach the threshold
opens it (that event is not acted on); it closes after a quiet time without events, or when
an operator deletes its item. :func:`step_breaker` is pure: it computes the next state from
the state as read, and the caller writes it conditioned on the version it read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, kw_only=True)
class BreakerState:
    """A circuit-breaker item (``pk=breaker#fleet`` / ``breaker#az#<az>``, ``sk=state``)."""

    exists: bool = False
    version: int = 0
    window_start_epoch: int | None = None
    count: int = 0
    opened_epoch: int | None = None
    last_alarm_epoch: int | None = None


@dataclass(frozen=True, kw_only=True)
class BreakerStep:
    before: BreakerState
    after: BreakerState
    is_open: bool
    just_opened: bool
    closed_by_quiet: bool


def step_breaker(
    state: BreakerState,
    *,
    threshold: int,
    window_seconds: int,
    quiet_seconds: int,
    now_epoch: int,
) -> BreakerStep:
    """Count one new ALARM in a breaker; open it when the window's count reaches ``threshold``.

    - Open and no ALARM for ``quiet_seconds``: it closes, and this ALARM starts a new
      window. Open otherwise: it stays open and counts (``last_alarm`` moves: every ALARM
      extends the quiet wait).
    - Closed: a window starts with the first ALARM and lasts ``window_seconds``;
      the ALARM that makes the count reach ``threshold`` opens the breaker (so at most
      ``threshold - 1`` ALARMs per window get past it).
    """
    closed_by_quiet = False
    window_start = state.window_start_epoch
    count = state.count
    opened = state.opened_epoch
    if opened is not None:
        last = state.last_alarm_epoch if state.last_alarm_epoch is not None else opened
        if now_epoch - last >= quiet_seconds:
            opened = None
            window_start = None
            count = 0
            closed_by_quiet = True
    if opened is not None:
        after = replace(
            state,
            exists=True,
            version=state.version + 1,
            count=count + 1,
            last_alarm_epoch=max(now_epoch, state.last_alarm_epoch or now_epoch),
        )
        return BreakerStep(
            before=state, after=after, is_open=True, just_opened=False, closed_by_quiet=False
        )
    if window_start is None or now_epoch - window_start >= window_seconds:
        window_start = now_epoch
        count = 0
    count += 1
    just_opened = count >= threshold
    after = BreakerState(
        exists=True,
        version=state.version + 1,
        window_start_epoch=window_start,
        count=count,
        opened_epoch=now_epoch if just_opened else None,
        last_alarm_epoch=now_epoch,
    )
    return BreakerStep(
        before=state,
        after=after,
        is_open=just_opened,
        just_opened=just_opened,
        closed_by_quiet=closed_by_quiet,
    )
