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
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from benchmarks.common import REPO_ROOT, VENV_PYTHON, SkipError, offline_env

#: Support modules that may hold the runtime test layer (newest name first).
LAYER_MODULES = ("tests.support.remediation_runtime", "tests.support.remediation")
LAYER_NAMES = ("load", "World", "Ec2Script", "Clock", "alarm_event", "env")
FUNCTION_DIR = REPO_ROOT / "crashcart" / "lambda" / "remediation"

_SERVER = """
import sys
import threading
from moto.server import ThreadedMotoServer

if "--serialize-dynamodb" in sys.argv:
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    original = DynamoHandler.call_action

    def serialized(self):
        with lock:
            return original(self)

    DynamoHandler.call_action = serialized

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
    the benchmarks DynamoDB's semantics; it does not change what the function does.
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
            "the remediation function (crashcart/lambda/remediation/handler.py) is missing"
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
    """Count API calls (``before-call``) and HTTP requests (``before-send``) on ``clients``.

    Returns the live counter dict (``api``, ``http``, ``enabled``: set to 0 to pause). The
    hooks are registered first, so calls answered by the test layer count as API calls but
    not as HTTP requests.
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
        meta.events.register_first("before-call", on_call)
        meta.events.register_first("before-send", on_send)
    return counter
