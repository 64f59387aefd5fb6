"""A service that needs a setting nobody gave it: it exits at start, again and again."""

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATABASE_URL = os.environ.get("DATABASE_URL")
if not DATABASE_URL:
    print("fatal: DATABASE_URL is not set", file=sys.stderr, flush=True)
    sys.exit(3)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(f"connected to {DATABASE_URL}\n".encode())


ThreadingHTTPServer(("", 8000), Handler).serve_forever()
