"""The dump key grammar: the in-account form and the organisation's central form (issue 23)."""

from __future__ import annotations

import pytest

from crashcart.functions.dump_arrival.events import BadEventError, parse_key
from crashcart.runtime.dumps import BadKeyError, parse_metadata_key

OWNER = "AROAEXAMPLEROLEID1234:i-0123456789abcdef0"
ACCOUNT = "111122223333"


def test_in_account_key_has_no_account_and_keeps_its_incident_key() -> None:
    dump = parse_metadata_key(f"dumps/{OWNER}/202612052300/metadata.json")
    assert dump.account is None
    assert dump.owner == OWNER
    assert dump.instance_id == "i-0123456789abcdef0"
    assert dump.incident_pk == "instance#i-0123456789abcdef0"
    assert dump.report_prefix == f"reports/{OWNER}/202612052300/"


def test_central_key_names_the_account_in_every_derived_key() -> None:
    dump = parse_metadata_key(f"dumps/{ACCOUNT}/{OWNER}/202612052300/metadata.json")
    assert dump.account == ACCOUNT
    assert dump.owner == OWNER
    assert dump.dump_id == "202612052300"
    assert dump.prefix == f"dumps/{ACCOUNT}/{OWNER}/202612052300/"
    assert dump.report_prefix == f"reports/{ACCOUNT}/{OWNER}/202612052300/"
    assert dump.incident_pk == f"instance#{ACCOUNT}:i-0123456789abcdef0"


def test_central_key_url_encoded_as_s3_events_send_it() -> None:
    dump = parse_metadata_key(
        f"dumps/{ACCOUNT}/AROAEXAMPLEROLEID1234%3Ai-0123456789abcdef0/d1/metadata.json"
    )
    assert (dump.account, dump.instance_id) == (ACCOUNT, "i-0123456789abcdef0")


@pytest.mark.parametrize(
    "key",
    [
        # not 12 digits
        f"dumps/11112222333/{OWNER}/d/metadata.json",
        f"dumps/1111222233334/{OWNER}/d/metadata.json",
        f"dumps/12345678901a/{OWNER}/d/metadata.json",
        # two account segments, account after the owner
        f"dumps/{ACCOUNT}/{ACCOUNT}/{OWNER}/d/metadata.json",
        f"dumps/{OWNER}/{ACCOUNT}/d/metadata.json",
        # the account alone is not an owner
        f"dumps/{ACCOUNT}/d/metadata.json",
        f"dumps/{ACCOUNT}/{OWNER}/../metadata.json",
    ],
)
def test_malformed_central_keys_are_refused(key: str) -> None:
    with pytest.raises(BadKeyError):
        parse_metadata_key(key)


def test_dump_arrival_function_accepts_the_central_key() -> None:
    dump = parse_key(f"dumps/{ACCOUNT}/{OWNER}/d1/metadata.json")
    assert dump.account == ACCOUNT
    with pytest.raises(BadEventError):
        parse_key(f"dumps/{ACCOUNT}/d1/metadata.json")
