"""The reference app's choices, read from CDK context: configuration without code.

``cdk synth -c crashcart:dry-run=false -c crashcart:notify-email=oncall@example.com`` (or
the same keys under ``"context"`` in ``cdk.json``) chooses what :func:`build_reference_app`
deploys. Every key is listed in :data:`CONTEXT_KEYS` (the table in docs/operations.md is
kept equal to it by a test); a bad value fails the synth with the key, the value, what is
allowed and why.

Values given with ``-c`` on the command line arrive as strings; values in ``cdk.json`` may be
JSON booleans, numbers or lists. Both are accepted.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crashcart.cli.support import REGION_PATTERN
from crashcart.errors import ConfigurationError

PREFIX = "crashcart:"

#: Every context key the reference app reads: key -> (default, allowed values, meaning).
CONTEXT_KEYS: dict[str, tuple[str, str, str]] = {
    "crashcart:account": (
        "none (environment-agnostic)",
        "a 12-digit AWS account id",
        "the account every stack deploys to",
    ),
    "crashcart:region": (
        "none (environment-agnostic)",
        "a region name such as eu-west-1",
        "the region every stack deploys to",
    ),
    "crashcart:dry-run": (
        "true",
        "true or false",
        "shadow mode: every guard runs and is recorded, the interrupt is a DryRun call; "
        "false arms it",
    ),
    "crashcart:instance-ids": (
        "none: the whole fleet (one Metrics Insights alarm)",
        "instance ids separated by commas",
        "watch only these instances, one alarm each (they must carry the opt-in tag)",
    ),
    "crashcart:auto-scaling-groups": (
        "none",
        "Auto Scaling group names separated by commas",
        "add a termination lifecycle hook to each: a terminating instance is held until its "
        "crash dump ships or its memory-sized deadline passes",
    ),
    "crashcart:triage": (
        "true",
        "true or false",
        "the Fargate triage job with its own VPC and endpoints; false leaves the first "
        "summary from the kernel log only",
    ),
    "crashcart:notify-email": (
        "none",
        "e-mail addresses separated by commas",
        "subscribe these addresses to the notification topic (each confirms by e-mail)",
    ),
    "crashcart:notify-url": (
        "none",
        "https:// URLs separated by commas",
        "subscribe these HTTPS endpoints (a chat relay, an incident tool) to the topic; each "
        "must confirm the subscription",
    ),
    "crashcart:resource-tags-for-telemetry": (
        "false",
        "true or false",
        "declare that the account has resource tags for telemetry switched on: an armed "
        "deployment then gets the Auto Scaling hold's backstop reboot alarm (a Metrics "
        "Insights query that selects opted-in instances by tag and matches nothing without it)",
    ),
    "crashcart:arm-running-instances": (
        "false",
        "true or false",
        "arm kdump and install the agent on running opted-in instances with a State Manager "
        "association (never reboots them; docs/running-instances.md)",
    ),
}

_ACCOUNT = re.compile(r"^[0-9]{12}\Z")
_INSTANCE_ID = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})\Z")
#: An Auto Scaling group name: 1-255 printable characters, no comma (the list separator).
_GROUP_NAME = re.compile(r"^[\x20-\x2b\x2d-\x7e]{1,255}\Z")
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+\Z")
_URL = re.compile(r"^https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/\S*)?\Z")


@dataclass(frozen=True, kw_only=True)
class ReferenceSettings:
    """What the reference app deploys, as read from context (defaults: shadow mode, fleet)."""

    account: str | None = None
    region: str | None = None
    dry_run: bool = True
    instance_ids: tuple[str, ...] = ()
    auto_scaling_groups: tuple[str, ...] = ()
    triage: bool = True
    notify_emails: tuple[str, ...] = ()
    notify_urls: tuple[str, ...] = ()
    arm_running_instances: bool = False
    resource_tags_for_telemetry: bool = False

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> ReferenceSettings:
        """Read and check every key; :class:`ConfigurationError` names a bad one.

        :param context: the app's context, ``app.node.get_all_context()``.
        """
        _refuse_near_misses(context)
        return cls(
            account=_optional(context, "crashcart:account", _ACCOUNT, "a 12-digit account id"),
            region=_optional(
                context, "crashcart:region", REGION_PATTERN, "a region name such as eu-west-1"
            ),
            dry_run=_boolean(context, "crashcart:dry-run", default=True),
            instance_ids=_listed(
                context,
                "crashcart:instance-ids",
                _INSTANCE_ID,
                "instance ids (i- and 8 or 17 lower-case hex digits) separated by commas",
            ),
            auto_scaling_groups=_listed(
                context,
                "crashcart:auto-scaling-groups",
                _GROUP_NAME,
                "Auto Scaling group names (1-255 printable characters) separated by commas",
            ),
            triage=_boolean(context, "crashcart:triage", default=True),
            notify_emails=_listed(
                context, "crashcart:notify-email", _EMAIL, "e-mail addresses separated by commas"
            ),
            notify_urls=_urls(context),
            arm_running_instances=_boolean(
                context, "crashcart:arm-running-instances", default=False
            ),
            resource_tags_for_telemetry=_boolean(
                context, "crashcart:resource-tags-for-telemetry", default=False
            ),
        )


def _refuse_near_misses(context: Mapping[str, Any]) -> None:
    """A misspelt key would silently keep the default (e.g. stay in dry-run): refuse it."""
    for key in context:
        if not key.startswith(PREFIX) or key in CONTEXT_KEYS:
            continue
        close = difflib.get_close_matches(key, CONTEXT_KEYS, n=1, cutoff=0.75)
        if close:
            raise ConfigurationError(
                f"context key {key!r} is not one crashcart reads; did you mean {close[0]!r}? "
                f"The keys are: {', '.join(CONTEXT_KEYS)}"
            )


def _text(key: str, value: Any) -> str:
    if isinstance(value, bool | int | float):
        return str(value).lower()
    if not isinstance(value, str):
        raise ConfigurationError(f"context {key}={value!r}: give a string")
    return value.strip()


def _boolean(context: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = context.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = _text(key, value).lower()
    if text in ("true", "false"):
        return text == "true"
    default_text, _allowed, meaning = CONTEXT_KEYS[key]
    raise ConfigurationError(
        f"context {key}={value!r}: give true or false (default {default_text}: {meaning})"
    )


def _optional(
    context: Mapping[str, Any], key: str, pattern: re.Pattern[str], allowed: str
) -> str | None:
    value = context.get(key)
    if value is None or value == "":
        return None
    text = _text(key, value)
    if not pattern.match(text):
        raise ConfigurationError(f"context {key}={value!r}: give {allowed}")
    return text


def _items(key: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [_text(key, item) for item in value if _text(key, item)]
    return [item.strip() for item in _text(key, value).split(",") if item.strip()]


def _listed(
    context: Mapping[str, Any], key: str, pattern: re.Pattern[str], allowed: str
) -> tuple[str, ...]:
    items = _items(key, context.get(key))
    for item in items:
        if not pattern.match(item):
            raise ConfigurationError(
                f"context {key}={context.get(key)!r}: {item!r} is not valid; give {allowed}"
            )
    if len(set(items)) != len(items):
        raise ConfigurationError(
            f"context {key}={context.get(key)!r}: an entry is listed twice; give each once"
        )
    return tuple(items)


def _urls(context: Mapping[str, Any]) -> tuple[str, ...]:
    # aws-assumption: sns-subscription-confirmation (public HTTPS endpoints that confirm)
    key = "crashcart:notify-url"
    for item in _items(key, context.get(key)):
        if item.lower().startswith("http://"):
            raise ConfigurationError(
                f"context {key}={context.get(key)!r}: {item!r} is plain HTTP; give an https:// "
                "URL (notifications name instances, panic messages and dump locations: they "
                "do not travel unencrypted)"
            )
    return _listed(
        context,
        key,
        _URL,
        "https:// URLs separated by commas (SNS delivers to public HTTPS endpoints only)",
    )
