"""The shop API: the catalogue. Reached by the frontend as http://api:8000/ (its Service name)."""

import os
import socket

from shoplib import serve

ITEMS = [{"sku": "mug", "price": 8}, {"sku": "tee", "price": 20}]


def catalogue() -> tuple[int, dict]:
    return 200, {"service": "api", "host": socket.gethostname(), "items": ITEMS}


if __name__ == "__main__":
    serve(
        "api",
        int(os.environ.get("PORT", "8000")),
        {
            "/": catalogue,
            "/healthz": lambda: (200, {"status": "ok"}),
        },
    )
