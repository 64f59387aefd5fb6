"""One HTTP request through the `dev --local` relay and tunnel vs straight to the server.

The relay (a real process, as in its container) listens on 127.0.0.3; devloop's tunnel hands
each connection to a local HTTP server; "direct" asks that server itself. A new connection per
request (the relay's unit of work). Loopback only: it measures devloop's added cost, not a
network.

    python bench/bench_relay.py [N]
"""

from __future__ import annotations

import http.client
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devloop.bridge.tunnel import Tunnel, tcp_dial  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, fmt: str, *args: object) -> None:
        pass


def _once(host: str, port: int) -> float:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"ok"
    conn.close()
    return (time.perf_counter() - t0) * 1000


def _series(host: str, port: int, n: int) -> list[float]:
    for _ in range(50):
        _once(host, port)  # warm up
    return [_once(host, port) for _ in range(n)]


def _rps(host: str, port: int, n: int, workers: int) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _i: _once(host, port), range(n)))
    return n / (time.perf_counter() - t0)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    local, port, control = _port(), _port(), _port()
    server = ThreadingHTTPServer(("127.0.0.1", local), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    relay = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "devloop/bridge/relay.py"),
            "--bind",
            "127.0.0.3",
            "--control",
            str(control),
            "--listen",
            str(port),
        ]
    )
    tunnel = Tunnel(tcp_dial("127.0.0.3", control), {port: local}, idle=8)
    tunnel.start()
    tunnel.ready.wait(30)
    try:
        for name, (host, p) in (("direct", ("127.0.0.1", local)), ("relay", ("127.0.0.3", port))):
            ms = sorted(_series(host, p, n))
            p50, p95 = statistics.median(ms), ms[int(len(ms) * 0.95) - 1]
            print(f"{name:7s} n={n} p50={p50:.2f} ms p95={p95:.2f} ms")
        for workers in (1, 8):
            print(f"relay   {workers} client(s): {_rps('127.0.0.3', port, n, workers):.0f} req/s")
        print(f"direct  8 client(s): {_rps('127.0.0.1', local, n, 8):.0f} req/s")
    finally:
        tunnel.stop()
        relay.terminate()
        relay.wait(10)
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
