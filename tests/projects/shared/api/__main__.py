"""The api: a JSON greeting, reached by the web service at http://api:8000/."""

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GREETING = "hello from api v1"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"greeting": GREETING}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("", 8000), Handler).serve_forever()
