"""The overdue sweep's configuration: environment variables -> one typed object (read per call).

Names and defaults: :data:`crashcart.runtime.environment.INCIDENT_SWEEP`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crashcart.runtime import environment as variables
from crashcart.runtime.environment_reader import require

from .overdue import DEFAULT_PARAMETER_NAME

DEFAULT_MAX_PAGES = 100
DEFAULT_OPT_IN_TAG_KEY = "crashcart:diagnostic-interrupt"
DEFAULT_OPT_IN_TAG_VALUE = "enabled"
DEFAULT_ATTESTATION_MAX_AGE_SECONDS = 604_800


class SettingsError(ValueError):
    """A configuration variable is missing or invalid."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    table_name: str
    topic_arn: str
    parameter_name: str = DEFAULT_PARAMETER_NAME
    max_pages: int = DEFAULT_MAX_PAGES
    census: bool = False
    opt_in_tag_key: str = DEFAULT_OPT_IN_TAG_KEY
    opt_in_tag_value: str = DEFAULT_OPT_IN_TAG_VALUE
    attestation_max_age_seconds: int = DEFAULT_ATTESTATION_MAX_AGE_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        require(environ, (variables.TABLE_NAME, variables.TOPIC_ARN), SettingsError)
        raw = environ.get(variables.SWEEP_MAX_PAGES, str(DEFAULT_MAX_PAGES)).strip()
        if not raw.isdigit() or int(raw) < 1:
            raise SettingsError(f"CRASHCART_SWEEP_MAX_PAGES={raw!r}: expected a whole number >= 1")
        census = environ.get(variables.ATTESTATION_CENSUS, "false").strip().lower()
        if census not in ("true", "false"):
            raise SettingsError(f"CRASHCART_ATTESTATION_CENSUS={census!r}: expected true or false")
        age = environ.get(
            variables.ATTESTATION_MAX_AGE_SECONDS, str(DEFAULT_ATTESTATION_MAX_AGE_SECONDS)
        ).strip()
        if not age.isdigit():
            raise SettingsError(
                f"CRASHCART_ATTESTATION_MAX_AGE_SECONDS={age!r}: expected a whole number of "
                "seconds (the remediation function's value)"
            )
        return cls(
            table_name=environ[variables.TABLE_NAME],
            topic_arn=environ[variables.TOPIC_ARN],
            parameter_name=environ.get(variables.DUMP_BUCKET_PARAMETER) or DEFAULT_PARAMETER_NAME,
            max_pages=int(raw),
            census=census == "true",
            opt_in_tag_key=environ.get(variables.OPT_IN_TAG_KEY) or DEFAULT_OPT_IN_TAG_KEY,
            opt_in_tag_value=environ.get(variables.OPT_IN_TAG_VALUE) or DEFAULT_OPT_IN_TAG_VALUE,
            attestation_max_age_seconds=int(age),
        )
