"""The python-web sample: a JSON API on http.server."""
