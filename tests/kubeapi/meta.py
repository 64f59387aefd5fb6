"""Object metadata helpers and the API error type that becomes a v1 Status."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import Any

Obj = dict[str, Any]

# The alphabet Kubernetes uses for generated name suffixes and hashes (no vowels, no 0/1/3).
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now() -> str:
    """The current time as Kubernetes writes it (RFC 3339, seconds, UTC)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """The current time with microseconds, as in Event.eventTime and lease times."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_uid() -> str:
    return str(uuid.uuid4())


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(SAFE_ALPHABET) for _ in range(n))


def safe_encode(data: bytes, n: int = 10) -> str:
    """Map bytes onto the safe alphabet, like the pod-template-hash encoding."""
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in data[:n])


class ApiError(Exception):
    """An error the API answers with a v1 Status (code, reason, message, details)."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def resource_ref(kind_plural: str, group: str) -> str:
    """How messages name a resource type: 'pods', 'deployments.apps'."""
    return f"{kind_plural}.{group}" if group else kind_plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    details = {"name": name, "kind": plural} | ({"group": group} if group else {})
    return ApiError(404, "NotFound", f'{resource_ref(plural, group)} "{name}" not found', details)


def already_exists(plural: str, group: str, name: str) -> ApiError:
    details = {"name": name, "kind": plural} | ({"group": group} if group else {})
    return ApiError(
        409, "AlreadyExists", f'{resource_ref(plural, group)} "{name}" already exists', details
    )


def conflict(plural: str, group: str, name: str) -> ApiError:
    details = {"name": name, "kind": plural} | ({"group": group} if group else {})
    message = (
        f'Operation cannot be fulfilled on {resource_ref(plural, group)} "{name}": the object has '
        "been modified; please apply your changes to the latest version and try again"
    )
    return ApiError(409, "Conflict", message, details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid; causes are (reason, field, message) like the field validators report."""
    text = "; ".join(f"{field}: {msg}" for _, field, msg in causes)
    details: Obj = {
        "name": name,
        "kind": kind,
        "causes": [{"reason": r, "message": m, "field": f} for r, f, m in causes],
    }
    if group:
        details["group"] = group
    ref = f"{kind}.{group}" if group else kind
    return ApiError(422, "Invalid", f'{ref} "{name}" is invalid: {text}', details)


def success_status(details: Obj | None = None) -> Obj:
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details is not None:
        body["details"] = details
    return body
