"""What the API says. Edit this file while `devloop dev` runs: it is synced, then the server
restarts."""

MESSAGE = "hello from python-web"


def greeting(name: str) -> dict[str, str]:
    return {"service": "python-web", "message": MESSAGE, "name": name}
