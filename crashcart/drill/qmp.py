"""A minimal QMP client: enough to inject an NMI and ask QEMU to quit.

QMP is QEMU's JSON control protocol (one JSON object per line on a socket). The drill uses
it for ``inject-nmi`` — the local equivalent of ``ec2:SendDiagnosticInterrupt``: the
hypervisor raises an NMI on the guest's vCPUs.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any


class QmpError(RuntimeError):
    """QEMU answered a command with an error, or the socket misbehaved."""


class QmpClient:
    """A connection to one QEMU's QMP unix socket (capabilities negotiated on connect)."""

    def __init__(self, path: Path, *, timeout: float = 10.0) -> None:
        self._path = path
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> QmpClient:
        self.connect()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def connect(self) -> None:
        deadline = time.monotonic() + self._timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self._timeout)
            try:
                sock.connect(str(self._path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if time.monotonic() > deadline:
                    raise QmpError(f"QMP socket {self._path} did not come up") from None
                time.sleep(0.1)
        self._sock = sock
        greeting = self._read_message()
        if "QMP" not in greeting:
            raise QmpError(f"unexpected QMP greeting: {greeting!r}")
        self.execute("qmp_capabilities")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run one QMP command and return its ``return`` value (events are skipped)."""
        if self._sock is None:
            raise QmpError("QMP client is not connected")
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self._sock.sendall(json.dumps(message).encode() + b"\n")
        while True:
            reply = self._read_message()
            if "event" in reply:
                continue
            if "error" in reply:
                error = reply["error"]
                raise QmpError(f"QMP {command} failed: {error.get('class')}: {error.get('desc')}")
            return reply.get("return")

    def inject_nmi(self) -> None:
        """Raise an NMI on the guest (QEMU delivers it to every vCPU on x86)."""
        self.execute("inject-nmi")

    def _read_message(self) -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise QmpError("QMP socket closed by QEMU")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        decoded: dict[str, Any] = json.loads(line)
        return decoded
