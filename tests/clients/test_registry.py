"""What the registry client decides without a network: which registries may speak plain HTTP,
and how the daemon's push errors (as real registries word them) are said."""

from __future__ import annotations

from pathlib import Path

import pytest

from devloop.clients.registry import is_insecure, push_error


@pytest.mark.parametrize(
    ("host", "listed", "insecure"),
    [
        ("127.0.0.1:5000", [], True),
        ("localhost:5000", [], True),
        ("[::1]:5000", [], True),
        ("172.17.0.1:5000", [], False),
        ("registry.example.com", [], False),
        ("registry.example.com:5000", ["registry.example.com:5000"], True),
        ("registry.example.com:5000", ["registry.example.com"], True),
        ("registry.example.com:5000", ["other.example.com:5000"], False),
        ("10.1.2.3:5000", ["10.0.0.0/8"], True),
        ("10.1.2.3:5000", ["192.168.0.0/16"], False),
    ],
)
def test_plain_http_only_for_loopback_or_listed(
    host: str, listed: list[str], insecure: bool
) -> None:
    assert is_insecure(host, listed) is insecure


REF = "registry.example.com/team/app:abc"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("unauthorized: authentication required", "not logged in to registry.example.com (run"),
        ("denied: requested access to the resource is denied", "not logged in to registry.exa"),
        (
            "name unknown: The repository with name 'team/app' does not exist in the registry",
            "repository team/app does not exist and registry.example.com does not create",
        ),
        ("toomanyrequests: You have reached your pull rate limit", "rate limited (429"),
        ("x509: certificate signed by unknown authority", "TLS verification failed for regis"),
    ],
)
def test_push_errors_say_what_to_do(
    message: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no credentials
    assert push_error(REF, message).reason.startswith(expected)


def test_push_denied_when_logged_in_names_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.json").write_text('{"auths": {"registry.example.com": {"auth": "dTpw"}}}')
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    reason = push_error(REF, "denied: requested access to the resource is denied").reason
    assert reason == "logged in to registry.example.com, but not allowed to push to team/app"
