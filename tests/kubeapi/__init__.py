"""A test Kubernetes API server whose pods are Docker containers (see fixture.py and app.py)."""

from __future__ import annotations
