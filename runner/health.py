"""`GET /health` → 200, the only inbound endpoint a node needs (container and orchestrator probes)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SHUTDOWN_POLL_SECS = 0.1


class _HealthHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        healthy = self.path.split("?", 1)[0] == "/health"
        body = b'{"status":"ok"}' if healthy else b'{"error":"not found"}'
        self.send_response(200 if healthy else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # probes every few seconds: stay quiet
        pass


class HealthServer:
    """Serves /health from a daemon thread; port 0 picks a free port (see .port)."""

    def __init__(self, port: int, host: str = "0.0.0.0"):
        self._server = ThreadingHTTPServer((host, port), _HealthHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(SHUTDOWN_POLL_SECS,), name="health", daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
