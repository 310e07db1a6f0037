"""A local HTTP endpoint that holds every GET until it is opened (HTTP calls kept in flight on
purpose), counting the requests that arrived."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Held:
    def __init__(self) -> None:
        self.opened = threading.Event()
        self.arrived = 0
        self.lock = threading.Lock()


@contextlib.contextmanager
def held_endpoint(hold_s: float = 60) -> Iterator[tuple[Held, str]]:
    """(state, URI); every request waits until `state.opened` is set (at most `hold_s`),
    then answers 200 `{}`. Opened when the block ends."""
    state = Held()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            with state.lock:
                state.arrived += 1
            state.opened.wait(hold_s)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{httpd.server_address[1]}/held"
    finally:
        state.opened.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
