"""What every ``crashcart`` subcommand shares: help text, errors, regions, AWS sessions.

One place, so that the subcommands say the same thing the same way: ``--help`` shows plain
text (the modules' docstrings are reStructuredText for the API docs), an error is one line
``crashcart <command>: error: <what and what to do>`` on stderr, a region is checked the
same way everywhere, and missing or broken credentials get the same words and exit code.

Exit codes shared by every subcommand that calls AWS (the rest are each command's own):

==== ============================================================================
0    success (the command's own meaning)
1    crashcart itself failed (a bug: please report the traceback)
2    usage error: bad arguments, a malformed region or instance id, no region
3    AWS could not be asked: no or unusable credentials (including an unknown
     ``--profile``), expired credentials, permission denied, throttling, network
==== ============================================================================

Imports stay cheap (no boto3 at module level): every subcommand module is imported to
build ``crashcart --help``.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Any

from crashcart.errors import ConfigurationError

if TYPE_CHECKING:
    import boto3

EXIT_USAGE = 2
EXIT_AWS = 3

#: An AWS region name such as ``eu-west-1``, ``us-gov-west-1`` or ``cn-north-1``.
#: ``\Z``, not ``$``: ``$`` would also accept the name followed by a newline.
REGION_PATTERN = re.compile(r"^[a-z]+(?:-[a-z]+)+-[0-9]+\Z")

_PERMISSION = frozenset({"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"})
_EXPIRED = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
)
_BAD_CREDENTIALS = frozenset(
    {
        "AuthFailure",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidToken",
    }
)
_THROTTLED = frozenset(
    {"RequestLimitExceeded", "Throttling", "ThrottlingException", "EC2ThrottledException"}
)

_RST_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_RST_LITERAL = re.compile(r"``([^`]+)``")


class CommandError(Exception):
    """A failure the command reports in one line and turns into an exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def version() -> str:
    """The installed crashcart version (``unknown`` when running from an uninstalled tree)."""
    from importlib import metadata

    try:
        return metadata.version("crashcart")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def plain(text: str) -> str:
    """reStructuredText inline markup as plain text: ``x`` -> x, :class:`~a.B` -> B."""

    def role(match: re.Match[str]) -> str:
        target = match.group(1)
        return target.rsplit(".", 1)[-1] if match.group(0).count("~") else target

    return _RST_LITERAL.sub(r"\1", _RST_ROLE.sub(role, text))


def summary(doc: str | None) -> str:
    """The first paragraph of a module docstring, as plain text (the ``--help`` description)."""
    first = (doc or "").strip().split("\n\n", 1)[0]
    return plain(" ".join(first.split()))


def add_version_argument(parser: argparse.ArgumentParser) -> None:
    """``--version``: print ``crashcart <version>`` and exit 0."""
    parser.add_argument(
        "--version", action="version", version=f"crashcart {version()}", help="show the version"
    )


def add_command(
    subparsers: Any,
    name: str,
    *,
    help: str,
    doc: str | None,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """Register one subcommand with a plain-text description from its module's docstring."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=summary(doc),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version_argument(parser)
    return parser


def exit_code_epilog(codes: list[tuple[int, str]]) -> str:
    """The ``exit codes:`` block at the end of ``--help``."""
    return "\n".join(["exit codes:", *(f"  {code}  {meaning}" for code, meaning in codes)])


def report_error(command: str, message: str) -> None:
    """``crashcart <command>: error: <message>`` on stderr."""
    print(f"crashcart {command}: error: {message}", file=sys.stderr)


def check_region(region: str, *, source: str = "--region") -> str:
    """``region`` if it is a region name, else a :class:`ConfigurationError` saying so."""
    if not REGION_PATTERN.match(region):
        raise ConfigurationError(
            f"region {region!r} ({source}) is not an AWS region name such as 'eu-west-1'"
        )
    return region


def aws_session(
    profile: str | None, regions: list[str] | None = None
) -> tuple[boto3.session.Session, list[str]]:
    """A boto3 session for ``profile`` and the regions to use, every region checked.

    :param regions: the regions given on the command line. Default: the session's region
        (``AWS_REGION``, ``AWS_DEFAULT_REGION`` or the profile's ``region``).
    :raises CommandError: an unknown profile or broken config (exit 3), no region or a
        malformed one (exit 2).
    """
    import boto3  # deferred: keeps `crashcart --help` fast
    from botocore.exceptions import BotoCoreError

    try:
        for region in regions or []:
            check_region(region)
    except ConfigurationError as error:
        raise CommandError(str(error), EXIT_USAGE) from None
    try:
        session = boto3.session.Session(profile_name=profile)
    except BotoCoreError as error:  # ProfileNotFound, a broken config file
        _code, message = explain_aws_error(error, "")
        raise CommandError(message, EXIT_AWS) from None
    if not regions:
        if not session.region_name:
            raise CommandError(
                "no region: pass --region or configure one (AWS_REGION, or region in the profile)",
                EXIT_USAGE,
            )
        try:
            regions = [check_region(session.region_name, source="the AWS configuration")]
        except ConfigurationError as error:
            raise CommandError(str(error), EXIT_USAGE) from None
    return session, list(dict.fromkeys(regions))


def explain_aws_error(
    error: BaseException,
    region: str,
    *,
    call: str = "the AWS call",
    action: str = "",
    doing: str = "",
) -> tuple[str, str]:
    """(code, plain words with what to do) for an AWS error met in ``region``.

    :param call: the API call that failed, e.g. ``"DescribeInstances"``.
    :param action: the IAM action it needs, e.g. ``"ec2:DescribeInstances"``.
    :param doing: what was denied, in words, e.g. ``"list instances"``.
        Default: ``"call <call>"``.
    """
    where = f" in {region}" if region else ""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", "Unknown"))
        message = str(response.get("Error", {}).get("Message", ""))
        attempts = int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) + 1
        if code in _PERMISSION:
            return code, (
                f"not allowed to {doing or 'call ' + call} ({code}): your credentials lack "
                f"{action or 'the permission'}{where} (the crashcart operator policy grants "
                "it); decode any encoded message with 'aws sts decode-authorization-message'"
            )
        if code in _EXPIRED:
            return code, (
                f"your AWS credentials have expired ({code}): refresh them (for example "
                "'aws sso login', or a new role session) and run again"
            )
        if code in _BAD_CREDENTIALS:
            return code, (
                f"AWS rejected your credentials ({code}: {message}): check the access key, "
                f"profile and session token, and that {region or 'the region'} is enabled for "
                "the account"
            )
        if code in _THROTTLED:
            return code, (
                f"EC2 throttled {call} ({code}) after {attempts} attempt"
                f"{'s' if attempts != 1 else ''}: try again later"
            )
        return code, f"{call} failed: {code}: {message}"
    code = type(error).__name__
    if code == "NoCredentialsError":
        return code, (
            "no AWS credentials found: configure a profile (--profile), environment "
            "variables or an SSO session"
        )
    if code in ("ProfileNotFound", "PartialCredentialsError", "CredentialRetrievalError"):
        return code, f"AWS credentials unusable: {error}"
    if code in ("SSOTokenLoadError", "UnauthorizedSSOTokenError", "TokenRetrievalError"):
        return code, f"the SSO session is missing or expired ({error}): run 'aws sso login'"
    if code in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
        return code, (
            f"could not reach the AWS endpoint{where} ({error}): check the region name and "
            "the network"
        )
    return code, f"{code}: {error}"


def is_credentials_problem(code: str) -> bool:
    """True for the codes that mean "your credentials", not "this resource"."""
    return code in _EXPIRED | _BAD_CREDENTIALS or code in (
        "NoCredentialsError",
        "ProfileNotFound",
        "PartialCredentialsError",
        "CredentialRetrievalError",
        "SSOTokenLoadError",
        "UnauthorizedSSOTokenError",
        "TokenRetrievalError",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
    )
