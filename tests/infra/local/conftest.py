"""A callback receiver for the asynchronous calls' tests."""

from __future__ import annotations

import queue
from http.server import BaseHTTPRequestHandler

import pytest

from tests.support.http_server import http_server


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.put((dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def callback():
    """A real HTTP server on a free port; `.received` holds (headers, body) per POST."""
    with http_server(_Receiver) as server:
        server.received = queue.Queue()
        server.url = f"http://127.0.0.1:{server.server_address[1]}/done"
        yield server
