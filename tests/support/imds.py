"""A fake instance metadata service (IMDSv2) on 127.0.0.1 for the agent's tests.

It answers a token (PUT ``/latest/api/token``), then, with that token only:
``autoscaling/target-lifecycle-state`` (when :attr:`FakeImds.state` is set) and the instance
identity document (when :attr:`FakeImds.identity` is set); everything else is 404, a request
without the token 401 (counted in :attr:`FakeImds.tokenless_requests`).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "token-1"


class FakeImds:
    def __init__(self) -> None:
        self.state: str | None = None
        self.identity: dict[str, Any] | None = None
        self.tokenless_requests = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                self._answer(200, TOKEN if self.path == "/latest/api/token" else "")

            def do_GET(self) -> None:
                if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                    fake.tokenless_requests += 1
                    self._answer(401, "")
                elif (
                    self.path == "/latest/meta-data/autoscaling/target-lifecycle-state"
                    and fake.state is not None
                ):
                    self._answer(200, fake.state)
                elif (
                    self.path == "/latest/dynamic/instance-identity/document"
                    and fake.identity is not None
                ):
                    self._answer(200, json.dumps(fake.identity))
                else:
                    self._answer(404, "")

            def _answer(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
