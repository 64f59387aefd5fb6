"""Helpers the shop services share: a JSON HTTP server and a JSON HTTP client."""

from shoplib.web import get_json, serve

__all__ = ["get_json", "serve"]
