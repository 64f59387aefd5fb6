"""serve(routes, port): GET-only JSON server; get_json(url): the client side."""

import json
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Route = Callable[[], tuple[int, dict]]


def serve(name: str, port: int, routes: dict[str, Route]) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path)
            status, body = route() if route else (404, {"error": f"no route {self.path}"})
            data = json.dumps(body).encode() + b"\n"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args: object) -> None:
            status = args[1] if len(args) > 1 else ""
            print(f"{name}: {self.command} {self.path} {status}", flush=True)

    print(f"{name} listening on :{port}", flush=True)
    ThreadingHTTPServer(("", port), Handler).serve_forever()


def get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())
