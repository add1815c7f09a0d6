"""The lifecycle the fake servers share: listen on 127.0.0.1, serve in a thread.

A fake subclasses `FakeServer`, passes its handler class and overrides
`_release` to wake requests it keeps waiting when the fake stops.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class FakeServer:
    """A stdlib HTTP server on a random local port; use as a context manager."""

    server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        """Listen now on a random port; `start()` begins serving."""
        self.stopped = threading.Event()
        self._server = self.server_class(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=name,
            daemon=True,
        )

    @property
    def port(self) -> int:
        """The port the server listens (or listened) on."""
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The server's root, e.g. `http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release waiting requests, stop serving and close the port."""
        self.stopped.set()
        self._release()
        started = self._thread.ident is not None
        if started:  # shutdown() would wait forever for a loop that never ran
            self._server.shutdown()
        self._server.server_close()
        if started:
            self._thread.join(timeout=5)

    def close(self) -> None:
        """The same as `stop()`."""
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _release(self) -> None:
        """Wake requests the fake holds open; `stopped` is already set."""


def send_json(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    """Answer a request with `body` as JSON."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
