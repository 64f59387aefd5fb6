"""One HTTP request through the `dev --local` relay and tunnel vs straight to the server.

Loopback (default): the relay (a real process) listens on 127.0.0.3; devloop's tunnel hands each
connection to a local HTTP server; "direct" asks that server itself.
`--docker`: the relay runs in its container (the image devloop builds), its port published;
"direct" asks a container running the same tiny server (the "pod"), its port published too.
A new connection per request (the relay's unit of work).

    python bench/bench_relay.py [N] [--docker]
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

from devloop.bridge import relay as relay_module  # noqa: E402
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


POD = """
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a): pass
ThreadingHTTPServer(("", 8000), H).serve_forever()
"""


def _report(targets: list[tuple[str, str, int]], n: int) -> None:
    for name, host, p in targets:
        ms = sorted(_series(host, p, n))
        p50, p95 = statistics.median(ms), ms[int(len(ms) * 0.95) - 1]
        print(f"{name:7s} n={n} p50={p50:.2f} ms p95={p95:.2f} ms")
    for name, host, p in targets:
        for workers in (1, 8):
            print(f"{name:7s} {workers} client(s): {_rps(host, p, n, workers):.0f} req/s")


def _published(api: object, cid: str, port: int) -> int:
    return int(api.port(cid, port)[0]["HostPort"])  # type: ignore[attr-defined]


def docker_bench(n: int) -> None:
    import docker

    from devloop.bridge.docker import CONTROL_PORT, build_image

    api = docker.from_env().api
    local = _port()
    server = ThreadingHTTPServer(("127.0.0.1", local), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    made = []
    try:
        image = build_image(api, "devloop/python:3")
        for argv, ports in (
            (["python3", "-c", POD], [8000]),
            (["python3", "/relay.py", "--control", str(CONTROL_PORT), "--listen", "8000"],
             [8000, CONTROL_PORT]),
        ):  # fmt: skip
            cid = api.create_container(
                image,
                command=argv,
                labels={"devloop.bench": "relay"},
                ports=ports,
                host_config=api.create_host_config(
                    port_bindings={p: ("127.0.0.1", None) for p in ports}
                ),
            )["Id"]
            made.append(cid)
            api.start(cid)
        pod, relay = made
        tunnel = Tunnel(
            tcp_dial("127.0.0.1", _published(api, relay, CONTROL_PORT)), {8000: local}, idle=8
        )
        tunnel.start()
        tunnel.ready.wait(60)
        time.sleep(1)
        try:
            _report(
                [
                    ("pod", "127.0.0.1", _published(api, pod, 8000)),
                    ("relay", "127.0.0.1", _published(api, relay, 8000)),
                ],
                n,
            )
        finally:
            tunnel.stop()
    finally:
        for cid in made:
            api.remove_container(cid, force=True)
        server.shutdown()
        server.server_close()


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 1000
    if "--docker" in sys.argv:
        docker_bench(n)
        return
    local, port, control = _port(), _port(), _port()
    server = ThreadingHTTPServer(("127.0.0.1", local), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    relay = subprocess.Popen(
        [
            sys.executable,
            str(relay_module.__file__),
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
        _report([("direct", "127.0.0.1", local), ("relay", "127.0.0.3", port)], n)
    finally:
        tunnel.stop()
        relay.terminate()
        relay.wait(10)
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
