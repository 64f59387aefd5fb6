"""The web front: asks the api by its Service name and shows the answer."""

import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = os.environ.get("API_URL", "http://api:8000/")
PREFIX = "web v1"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        try:
            with urllib.request.urlopen(API, timeout=5) as r:
                greeting = json.load(r)["greeting"]
            status = 200
        except OSError as exc:
            greeting, status = f"api unreachable: {exc}", 502
        body = f"{PREFIX} | {greeting}\n".encode()
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("", 8080), Handler).serve_forever()
