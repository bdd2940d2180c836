"""The drill function's configuration: environment variables -> one typed object (read per call).

Names and defaults: :data:`crashcart.runtime.environment.CANARY_DRILL`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crashcart.runtime import environment as variables
from crashcart.runtime.environment_reader import require

DEFAULT_INSTANCE_TYPES = ("m7i.large", "r7i.2xlarge")


class SettingsError(ValueError):
    """A configuration variable is missing or invalid."""


def _whole(environ: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = environ.get(name, str(default)).strip()
    if not raw.isdigit() or int(raw) < minimum:
        raise SettingsError(f"{name}={raw!r}: expected a whole number >= {minimum}")
    return int(raw)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What the drill steps need to know; every duration in seconds."""

    drill_table: str
    incident_table: str
    topic_arn: str
    subnet_id: str
    security_group_id: str
    instance_profile_arn: str
    hang_document: str
    candidate_parameter: str
    verified_parameter: str
    pipeline_tag_value: str
    canary_tag_value: str
    instance_types: tuple[str, ...] = DEFAULT_INSTANCE_TYPES
    opt_in_tag_key: str = "crashcart:diagnostic-interrupt"
    opt_in_tag_value: str = "enabled"
    dump_bucket: str = ""
    boot_timeout: int = 1200
    dump_timeout: int = 2400
    poll_seconds: int = 60
    hang_after: int = 960
    lock_seconds: int = 14400
    max_canary_lifetime: int = 10800
    attestation_max_age: int = 3600

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        required = (
            variables.DRILL_TABLE_NAME,
            variables.TABLE_NAME,
            variables.TOPIC_ARN,
            variables.DRILL_SUBNET_ID,
            variables.DRILL_SECURITY_GROUP_ID,
            variables.DRILL_INSTANCE_PROFILE_ARN,
            variables.DRILL_HANG_DOCUMENT,
            variables.DRILL_CANDIDATE_PARAMETER,
            variables.DRILL_VERIFIED_PARAMETER,
            variables.DRILL_PIPELINE_TAG_VALUE,
            variables.DRILL_CANARY_TAG_VALUE,
        )
        require(environ, required, SettingsError)
        types = (
            tuple(
                t.strip() for t in environ.get(variables.DRILL_INSTANCE_TYPES, "").split(",") if t
            )
            or DEFAULT_INSTANCE_TYPES
        )
        return cls(
            drill_table=environ[variables.DRILL_TABLE_NAME],
            incident_table=environ[variables.TABLE_NAME],
            topic_arn=environ[variables.TOPIC_ARN],
            subnet_id=environ[variables.DRILL_SUBNET_ID],
            security_group_id=environ[variables.DRILL_SECURITY_GROUP_ID],
            instance_profile_arn=environ[variables.DRILL_INSTANCE_PROFILE_ARN],
            hang_document=environ[variables.DRILL_HANG_DOCUMENT],
            candidate_parameter=environ[variables.DRILL_CANDIDATE_PARAMETER],
            verified_parameter=environ[variables.DRILL_VERIFIED_PARAMETER],
            pipeline_tag_value=environ[variables.DRILL_PIPELINE_TAG_VALUE],
            canary_tag_value=environ[variables.DRILL_CANARY_TAG_VALUE],
            instance_types=types,
            opt_in_tag_key=environ.get(variables.OPT_IN_TAG_KEY) or cls.opt_in_tag_key,
            opt_in_tag_value=environ.get(variables.OPT_IN_TAG_VALUE) or cls.opt_in_tag_value,
            dump_bucket=environ.get(variables.DUMP_BUCKET, ""),
            boot_timeout=_whole(environ, variables.DRILL_BOOT_TIMEOUT_SECONDS, 1200, minimum=1),
            dump_timeout=_whole(environ, variables.DRILL_DUMP_TIMEOUT_SECONDS, 2400, minimum=1),
            poll_seconds=_whole(environ, variables.DRILL_POLL_SECONDS, 60),
            hang_after=_whole(environ, variables.DRILL_HANG_AFTER_SECONDS, 960),
            lock_seconds=_whole(environ, variables.DRILL_LOCK_SECONDS, 14400, minimum=60),
            max_canary_lifetime=_whole(
                environ, variables.DRILL_MAX_CANARY_LIFETIME_SECONDS, 10800, minimum=60
            ),
            attestation_max_age=_whole(
                environ, variables.ATTESTATION_MAX_AGE_SECONDS, 3600, minimum=60
            ),
        )
