"""Local AWS for the runtime benchmarks: moto's server on 127.0.0.1 and the test layer.

- :func:`moto_server` runs ``moto.server.ThreadedMotoServer`` on 127.0.0.1 in a child
  process of its own (so the server does not share this process's GIL with the code being
  measured) and stops it afterwards.
- :func:`test_layer` is the remediation tests' support module, reused as is: it loads the
  function's modules the way Lambda does, builds the function's resources on moto
  (``World``) and adds what moto lacks (``Ec2Script``: ``SendDiagnosticInterrupt`` and
  scripted ``DescribeInstanceStatus`` answers, through botocore event hooks). Nothing here
  duplicates it.
"""

from __future__ import annotations

import importlib
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from benchmarks.common import REPO_ROOT, VENV_PYTHON, SkipError, offline_env

#: Support modules that may hold the runtime test layer (newest name first).
LAYER_MODULES = ("tests.support.remediation_runtime", "tests.support.remediation")
LAYER_NAMES = ("load", "World", "Ec2Script", "Clock", "alarm_event", "env")
FUNCTION_DIR = REPO_ROOT / "crashcart" / "functions" / "remediation"

_SERVER = """
import sys
import threading
from moto.server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

# moto finds the backend for a request's host by listing and stat-ing its own package folder
# and trying every service's URL patterns, on every request (~200 stat calls, under a global
# lock). The answer depends only on the host: remember it. Routing only; no answer changes.
backend_for_host = DomainDispatcherApplication.get_backend_for_host
routes = {}

def cached_backend_for_host(self, host):
    if host not in routes:
        routes[host] = backend_for_host(self, host)
    return routes[host]

DomainDispatcherApplication.get_backend_for_host = cached_backend_for_host

if "--serialize-dynamodb" in sys.argv:
    import copy
    import types

    from moto.dynamodb import models
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    call_action = DynamoHandler.call_action

    def serialized(self):
        with lock:
            return call_action(self)

    DynamoHandler.call_action = serialized

    # moto backs up every table a transaction touches with a deep copy, for a rollback:
    # slow on a table of thousands of items. With one request at a time, the conditions
    # can be checked before anything is written: if all hold, the transaction cannot be
    # cancelled by one (skip the copy); if one fails, answer the cancellation at once.
    local = threading.local()

    def deepcopy(value, memo=None):
        if getattr(local, "no_backup", False) and isinstance(value, models.Table):
            return value
        return copy.deepcopy(value, memo)

    models.copy = types.SimpleNamespace(deepcopy=deepcopy, copy=copy.copy)

    def holds(backend, entry):
        ((kind, op),) = entry.items()
        condition = op.get("ConditionExpression")
        if condition is None:
            return True
        table = backend.get_table(op["TableName"])
        if kind == "Put":
            item = op["Item"]
            key = {table.hash_key_attr: item[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = item[table.range_key_attr]
        else:
            key = op["Key"]
        current = backend.get_item(op["TableName"], key)
        expression = get_filter_expression(
            condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        )
        return expression.expr(current)

    from moto.dynamodb.exceptions import ConditionalCheckFailed, TransactionCanceledException

    transact_write_items = models.DynamoDBBackend.transact_write_items

    def fast_transact_write_items(self, transact_items):
        try:
            verdicts = [bool(holds(self, entry)) for entry in transact_items]
            simple = len(transact_items) <= 100 and all(len(e) == 1 for e in transact_items)
        except Exception:
            return transact_write_items(self, transact_items)  # moto's own answer
        if simple and not all(verdicts):
            # Cancelled by a condition: nothing is written; the same answer moto gives.
            message = ConditionalCheckFailed().message
            raise TransactionCanceledException(
                [
                    (None, None, None) if ok else ("ConditionalCheckFailed", message, None)
                    for ok in verdicts
                ]
            )
        local.no_backup = all(verdicts)
        try:
            return transact_write_items(self, transact_items)
        finally:
            local.no_backup = False

    models.DynamoDBBackend.transact_write_items = fast_transact_write_items

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"http://{host}:{port}", flush=True)
sys.stdin.read()
server.stop()
"""


@contextmanager
def moto_server(*, serialize_dynamodb: bool = True) -> Iterator[str]:
    """A fresh moto server on 127.0.0.1 in its own process; yields its URL.

    ``serialize_dynamodb``: handle one DynamoDB request at a time. moto 5.2.5's
    ``TransactWriteItems`` is not isolated under concurrent requests (it checks conditions
    and writes item by item without a lock, and on a cancelled transaction restores a
    deep copy of the whole table taken when it began, undoing writes other requests made
    meanwhile); real DynamoDB transactions are serializable. One request at a time gives
    the benchmarks DynamoDB's semantics; it does not change what the function does. It also
    skips moto's whole-table backup copy for transactions whose conditions all hold (it
    costs ~0.2 s per transaction on a table of 1,000 incidents; see ``_SERVER``).

    Always: moto's routing of a request to its service (which lists and stats moto's package
    folder on every request) is remembered per host. Both are server-side shortcuts that
    change no answer; they apply alike to the function's calls and to the baselines.
    """
    flags = ["--serialize-dynamodb"] if serialize_dynamodb else []
    process = subprocess.Popen(
        [str(VENV_PYTHON), "-c", _SERVER, *flags],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # werkzeug logs every request
        text=True,
        env=offline_env(),
        cwd=REPO_ROOT,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"moto server did not start (said {url!r})")
        yield url
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def test_layer() -> ModuleType:
    """The remediation runtime's test layer module, or :class:`SkipError` with the reason."""
    if not (FUNCTION_DIR / "handler.py").exists():
        raise SkipError(
            "the remediation function (crashcart/functions/remediation/handler.py) is missing"
        )
    problems = []
    for name in LAYER_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception as error:  # a module being edited may not import
            problems.append(f"{name}: {type(error).__name__}: {error}")
            continue
        missing = [n for n in LAYER_NAMES if not hasattr(module, n)]
        if not missing:
            try:
                functions = module.load()
            except Exception as error:
                raise SkipError(
                    f"the remediation function's modules do not import: "
                    f"{type(error).__name__}: {error}"
                ) from error
            if not hasattr(functions.handler, "build"):
                raise SkipError("the remediation handler has no build() to inject clients into")
            return module
        problems.append(f"{name} lacks {', '.join(missing)}")
    raise SkipError("no usable remediation test layer (" + "; ".join(problems) + ")")


def count_calls(clients: dict[str, Any]) -> dict[str, int]:
    """Count API calls and HTTP requests on ``clients``.

    Returns the live counter dict (``api``, ``http``, ``enabled``: set to 0 to pause). API
    calls are counted at ``before-parameter-build`` (every call passes there, including
    those the test layer then answers at ``before-call``); HTTP requests at
    ``before-send`` (only calls that go to the server).
    """
    counter = {"api": 0, "http": 0, "enabled": 1}

    def on_call(**_: Any) -> None:
        if counter["enabled"]:
            counter["api"] += 1

    def on_send(**_: Any) -> None:
        if counter["enabled"]:
            counter["http"] += 1

    seen: set[int] = set()
    for client in clients.values():
        meta = getattr(client, "meta", None)
        if meta is None or id(client) in seen:
            continue
        seen.add(id(client))
        meta.events.register_first("before-parameter-build", on_call)
        meta.events.register_first("before-send", on_send)
    return counter


class ThreadCalls:
    """Per-thread counts of API calls and HTTP requests on a set of clients.

    The clients are shared by the worker threads (as in :func:`count_calls`), but each
    delivery runs on one thread, so a thread's counts between :meth:`reset` and
    :meth:`read` are that delivery's calls.
    """

    def __init__(self, clients: dict[str, Any]) -> None:
        self._local = threading.local()
        seen: set[int] = set()
        for client in clients.values():
            meta = getattr(client, "meta", None)
            if meta is None or id(client) in seen:
                continue
            seen.add(id(client))
            meta.events.register_first("before-parameter-build", self._on_call)
            meta.events.register_first("before-send", self._on_send)

    def _on_call(self, **_: Any) -> None:
        self._local.api = getattr(self._local, "api", 0) + 1

    def _on_send(self, **_: Any) -> None:
        self._local.http = getattr(self._local, "http", 0) + 1

    def reset(self) -> None:
        self._local.api = 0
        self._local.http = 0

    def read(self) -> tuple[int, int]:
        """(API calls, HTTP requests) on this thread since :meth:`reset`."""
        return getattr(self._local, "api", 0), getattr(self._local, "http", 0)
