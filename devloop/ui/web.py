"""The dashboard's HTTP side: the page, its assets, the event stream (SSE) and the actions.

Reads are GETs; the only thing that acts is `POST /api/action` with the session's token in the
`X-Devloop-Token` header, which only the page devloop served knows (no CORS headers: another
site's script can neither read the page nor send that header). Every request must name
`127.0.0.1:PORT` or `localhost:PORT` as its Host, which defeats DNS rebinding.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from devloop.errors import DevloopError
from devloop.ui.hub import Hub

TOKEN_HEADER = "x-devloop-token"
Act = Callable[[str, "str | None"], None]  # Session.request(command, service)

_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class HostCheck:
    """403 for any request whose Host is not this server's loopback address and port."""

    def __init__(self, app: ASGIApp, port: int) -> None:
        self.app = app
        self.allowed = {f"127.0.0.1:{port}".encode(), f"localhost:{port}".encode()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hosts = [v for k, v in scope["headers"] if k == b"host"]
            if len(hosts) != 1 or hosts[0].lower() not in self.allowed:
                await PlainTextResponse("forbidden: unknown Host", 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def app(hub: Hub, token: str, port: int, act: Callable[[], Act | None]) -> ASGIApp:
    """The ASGI app; `act()` gives the session's steering call (None: not available)."""
    page = resources.files("devloop.ui").joinpath("static/index.html").read_text("utf-8")
    page = page.replace("{{TOKEN}}", token)

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers=_HEADERS)

    async def events(request: Request) -> Response:
        since = request.headers.get("last-event-id") or request.query_params.get("since") or "0"
        last = int(since) if since.isdigit() else 0
        page_q = hub.subscribe()

        async def stream() -> AsyncIterator[dict[str, Any]]:
            sent = last
            try:
                for seq, data in hub.since(last):
                    sent = seq
                    yield {"id": str(seq), "data": data}
                while True:
                    frame = await page_q.get()
                    if Hub.ended(frame):
                        return
                    if frame[0] > sent:
                        sent = frame[0]
                        yield {"id": str(frame[0]), "data": frame[1]}
            finally:
                hub.unsubscribe(page_q)

        return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})

    async def action(request: Request) -> Response:
        given = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return PlainTextResponse("forbidden: missing or wrong token", 403)
        try:
            body = await request.json()
            command = str(body["command"])
            service = body.get("service")
        except (ValueError, KeyError, TypeError, AttributeError):
            return JSONResponse({"error": 'expected {"command": ..., "service": ...}'}, 400)
        steer = act()
        if steer is None:
            return JSONResponse({"error": "this session takes no commands"}, 501)
        try:
            steer(command, None if service is None else str(service))
        except DevloopError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse({"ok": True, "command": command, "service": service}, 202)

    routes = [
        Route("/", index),
        Route("/events", events),
        Route("/api/action", action, methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("devloop.ui", "static")])),
    ]
    return HostCheck(Starlette(routes=routes), port)
