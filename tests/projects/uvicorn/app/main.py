"""A bare ASGI app: the message at /, the files under pages/ at /pages/<path>."""

from pathlib import Path

from app.message import MESSAGE

PAGES = Path(__file__).parent / "pages"


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    status, body = 200, (MESSAGE + "\n").encode()
    if path.startswith("/pages/"):
        file = (PAGES / path.removeprefix("/pages/")).resolve()
        if file.is_relative_to(PAGES.resolve()) and file.is_file():
            body = file.read_bytes()
        else:
            status, body = 404, b"not found\n"
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})
