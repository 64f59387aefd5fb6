"""HTTP API: GET / and GET /hello/<name> answer JSON, GET /healthz answers ok."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.greeting import greeting

PORT = int(os.environ.get("PORT", "8000"))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            return self.reply(200, {"status": "ok"})
        if self.path == "/" or self.path.startswith("/hello/"):
            name = self.path.removeprefix("/hello/").strip("/") or "world"
            return self.reply(200, greeting(name))
        return self.reply(404, {"error": f"no route {self.path}"})

    def reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args: object) -> None:
        print(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}", flush=True)


if __name__ == "__main__":
    print(f"python-web listening on :{PORT}", flush=True)
    ThreadingHTTPServer(("", PORT), Handler).serve_forever()
