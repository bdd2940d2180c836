"""The triage job's supervisor (crashcart.triage.job.process, real launch path) with the
hostile parser of tests/e2e/hostile_parser.py in place of the real one.

Run as root by tests/e2e/test_parser_isolation.py with the environment a Fargate task gives
its container: credentials only through ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (on Fargate,
the relative URI) and the job's own settings. Prints the job's outcome line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import boto3

from crashcart.triage import job

HOSTILE = Path(__file__).resolve().parent / "hostile_parser.py"
#: The real parser module, run by an interpreter the parser's user may run (the job image's
#: /usr/local/bin/python is one; a pyenv interpreter under /root is not) with the test's
#: site-packages for drgn.
REAL = (
    "import runpy, sys; sys.path.append(sys.argv.pop(1)); "
    "runpy.run_module('crashcart.triage.parser', run_name='__main__')"
)


def main() -> int:
    moto, credentials_host, other_dump, findings, interpreter, site = sys.argv[1:7]
    real = sys.argv[7:] == ["real"]
    settings = job.Settings.from_env()
    adapter = job.Adapter(
        settings, boto3.client("s3"), boto3.client("dynamodb"), boto3.client("sns")
    )

    def hostile(*args: str) -> list[str]:
        if real:
            return [interpreter, "-s", "-c", REAL, site, *args]
        return [
            interpreter,
            "-s",
            str(HOSTILE),
            *args,
            "--moto",
            moto,
            "--credentials-host",
            credentials_host,
            "--other-dump",
            other_dump,
            "--findings",
            findings,
            "--site",
            site,
        ]

    try:
        job.log(job.process(adapter, command=hostile))
    except job.BadInputError as error:
        job.log(job.record_failure(adapter, settings.metadata_key, str(error)))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
