"""A local stand-in for TensorFlow Serving's REST API, for tests and benchmarks.

It serves one model's newest versions over HTTP as TF Serving does: what it answers is
tfserving_rest.py (paths, version status, predict, codes and messages) and tfserving_json.py
(TF Serving's JSON tensors); this module is the server around them:
- HTTP/1.1 keep-alive, as TF Serving's server; an idle keep-alive connection is closed after
  `idle_timeout_s` (TF Serving's HTTP server, libevent's evhttp, closes it after 50 s);
- fault modes, switchable while running: "unavailable" (503), "hang" (no answer until
  stopped, past any client timeout), "close" (drops the connection without an answer);
  `drop_next = n` drops only the next n requests (a connection closed under a request).

    with running_tfserving(model_dir) as base_url: ...           # just the URL
    with TFServingStub(model_dir) as stub: stub.fault = "hang"   # URL + controls

Benchmarks: python -m infra.bench.tfserving_standin --model-dir DIR --port P
"""

import argparse
import contextlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Self

from .tfserving_rest import TFServingRest

Fault = Literal["none", "unavailable", "hang", "close"]
IDLE_TIMEOUT_S = 50.0  # evhttp's default connection timeout


class TFServingStub(TFServingRest):
    """TF Serving's answers for one model's newest versions, served on 127.0.0.1 (an
    ephemeral port unless told), with fault modes."""

    def __init__(self, model_dir: Path, model_name: str = "modelo", *, port: int = 0,
                 input_name: str | None = None, hang_s: float = 60.0, num_versions: int = 2,
                 idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        super().__init__(model_dir, model_name, input_name=input_name, num_versions=num_versions)
        self.hang_s = hang_s
        self.fault: Fault = "none"
        self.drop_next = 0
        self.idle_timeout_s = idle_timeout_s
        self.idle_closed = 0  # connections closed for being idle
        self.client_ports: set[int] = set()  # one per TCP connection seen: shows keep-alive
        self.released = threading.Event()  # set when stopping: frees "hang" handlers
        self._server = _StubServer(("127.0.0.1", port), self)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="tfserving-stub",
                                        daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def serve_forever(self) -> None:
        self._server.serve_forever()


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], stub: TFServingStub) -> None:
        super().__init__(address, _Handler)
        self.stub = stub


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as TF Serving's server
    # Headers and body go out in two writes; with Nagle's algorithm on, the body would wait
    # for the client's delayed ACK (40 ms on Linux), which TF Serving does not make it do.
    disable_nagle_algorithm = True
    server: _StubServer

    def setup(self) -> None:
        super().setup()
        # The socket timeout bounds the wait for a connection's next request: idle past it,
        # the handler ends and the connection closes (handle_one_request on TimeoutError).
        self.connection.settimeout(self.server.stub.idle_timeout_s)

    def log_error(self, format: str, *args: Any) -> None:
        if format.startswith("Request timed out"):  # http.server's words for the idle close
            self.server.stub.idle_closed += 1

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:  # quiet under pytest
        pass

    def _serve(self, method: str) -> None:
        stub = self.server.stub
        stub.client_ports.add(self.client_address[1])
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = stub.fault
        if stub.drop_next > 0:
            stub.drop_next -= 1
            fault = "close"
        if fault == "close":
            self.close_connection = True
            return
        if fault == "hang":
            stub.released.wait(stub.hang_s)
            self.close_connection = True
            return
        if fault == "unavailable":
            status, payload = 503, {"error": "Stub is in fault mode: unavailable"}
        else:
            status, payload = stub.answer(method, self.path.split("?", 1)[0], body)
        text = payload if isinstance(payload, str) else json.dumps(payload)
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def running_tfserving(model_dir: Path, model_name: str = "modelo") -> Iterator[str]:
    """A stub serving `model_dir` as `model_name`; yields its base URL."""
    with TFServingStub(model_dir, model_name) as stub:
        yield stub.base_url


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True,
                        help="a SavedModel version folder or a model folder with numeric versions")
    parser.add_argument("--model-name", default="modelo")
    parser.add_argument("--port", type=int, default=8501)
    args = parser.parse_args()
    stub = TFServingStub(args.model_dir, args.model_name, port=args.port)
    versions = ", ".join(str(n) for n in sorted(stub.models))
    print(f"serving {args.model_name} versions {versions} at {stub.base_url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        stub.serve_forever()


if __name__ == "__main__":
    main()
