"""The shop frontend: GET / asks the api (by its Service name) for the catalogue and shows it."""

import os

from shoplib import get_json, serve

API_URL = os.environ.get("API_URL", "http://api:8000/")
GREETING = os.environ.get("GREETING", "welcome to the shop")


def home() -> tuple[int, dict]:
    try:
        api = get_json(API_URL)
    except OSError as exc:
        return 502, {"service": "frontend", "error": f"the api at {API_URL} did not answer: {exc}"}
    return 200, {"service": "frontend", "greeting": GREETING, "api": api}


if __name__ == "__main__":
    serve(
        "frontend",
        int(os.environ.get("PORT", "8080")),
        {
            "/": home,
            "/healthz": lambda: (200, {"status": "ok"}),
        },
    )
