"""The fault front: each fault as a client sees it (raw sockets, the kubernetes client)."""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.kubeapi.faults import Rule

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeFault


def _get(sock: socket.socket, path: str) -> None:
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: x\r\n"
        "Authorization: Bearer devloop-test-token\r\n\r\n".encode()
    )


def _connect(kube_fault: KubeFault, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", kube_fault.front.port), timeout=timeout)
    return sock


@pytest.mark.parametrize("code", [401, 403, 429, 500, 503])
def test_status_rules_answer_chosen_requests(kube_fault: KubeFault, code: int) -> None:
    kube_fault.front.add(
        Rule("status", status=code, method="GET", path=r"^/api/v1/namespaces/default$")
    )
    with config.new_client_from_config(str(kube_fault.kubeconfig)) as api:
        core = client.CoreV1Api(api)
        core.list_namespaced_config_map("default")  # not matched: forwarded
        with pytest.raises(ApiException) as caught:
            core.read_namespace("default")
        assert caught.value.status == code
        assert json.loads(caught.value.body)["code"] == code
        if code == 429:
            assert caught.value.headers["Retry-After"] == "1"
        kube_fault.front.clear()
        assert core.read_namespace("default").metadata.name == "default"
    assert [s.action for s in kube_fault.front.seen if "namespaces/default" in s.target][-2:] == [
        "status",
        "forward",
    ]


def test_blackhole_holds_established_connections_without_closing(kube_fault: KubeFault) -> None:
    with _connect(kube_fault) as sock:
        _get(sock, "/version")
        assert b"200 OK" in sock.recv(65536)
        kube_fault.front.blackhole(True)
        _get(sock, "/version")
        sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            sock.recv(65536)  # no answer, no FIN (b""), no RST (ConnectionResetError)
        kube_fault.front.blackhole(False)
        sock.settimeout(5.0)
        assert b"200 OK" in sock.recv(65536)


def test_blackhole_rule_on_one_path(kube_fault: KubeFault) -> None:
    kube_fault.front.add(Rule("blackhole", path=r"watch=true"))
    with _connect(kube_fault, timeout=1.0) as sock:
        _get(sock, "/api/v1/namespaces/default/pods?watch=true")
        with pytest.raises(TimeoutError):
            sock.recv(65536)
    with _connect(kube_fault) as sock:
        _get(sock, "/version")
        assert b"200 OK" in sock.recv(65536)


def test_reset_all_and_reset_rule(kube_fault: KubeFault) -> None:
    with _connect(kube_fault) as sock:
        _get(sock, "/version")
        sock.recv(65536)
        kube_fault.front.reset_all()
        time.sleep(0.2)
        with pytest.raises(ConnectionResetError):
            sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(65536)
    kube_fault.front.add(Rule("reset", path=r"^/api$"))
    with _connect(kube_fault) as sock:
        _get(sock, "/api")
        with pytest.raises(ConnectionResetError):
            sock.recv(65536)


def test_refuse_closes_new_connections(kube_fault: KubeFault) -> None:
    kube_fault.front.refuse(True)
    with _connect(kube_fault) as sock:
        _get(sock, "/version")
        # Closed without an answer: FIN (b"") if the request was sent before the close,
        # RST if it arrived after it; which one is a race of the two processes.
        try:
            answer = sock.recv(65536)
        except ConnectionResetError:
            answer = b""
        assert answer == b""
    kube_fault.front.refuse(False)
    with _connect(kube_fault) as sock:
        _get(sock, "/version")
        assert b"200 OK" in sock.recv(65536)


def test_delay_holds_requests_back(kube_fault: KubeFault) -> None:
    kube_fault.front.add(Rule("delay", path=r"^/version", delay=1.0))
    with _connect(kube_fault) as sock:
        started = time.monotonic()
        _get(sock, "/version")
        assert b"200 OK" in sock.recv(65536)
        assert time.monotonic() - started >= 1.0


def test_blackhole_open_holds_the_open_connections_and_lets_new_ones_through(
    kube_fault: KubeFault,
) -> None:
    with _connect(kube_fault) as sock:
        _get(sock, "/version")
        assert b"200 OK" in sock.recv(65536)
        assert kube_fault.front.blackhole_open() >= 1
        _get(sock, "/version")
        sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            sock.recv(65536)  # held for good: no answer, no FIN, no RST
        with _connect(kube_fault) as fresh:
            _get(fresh, "/version")
            assert b"200 OK" in fresh.recv(65536)
