"""pytest fixtures: `kube_api` (one server per session) and `kube_namespace` (a fresh name per
test).

Load with `pytest_plugins = ["tests.kubeapi.fixture"]`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kubeapi import meta
from tests.kubeapi.app import CONTEXT, KubeApiServer
from tests.kubeapi.faults import FaultFront
from tests.kubeapi.settings import Settings


@dataclass(frozen=True)
class KubeApi:
    """What a test needs to reach the server as a client would: a kubeconfig and its context."""

    server: KubeApiServer
    kubeconfig: Path
    context: str
    url: str


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    server = KubeApiServer(settings=Settings.fast())
    server.start()
    try:
        kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("kubeapi") / "kubeconfig")
        yield KubeApi(server, kubeconfig, CONTEXT, server.url)
    finally:
        server.stop()


@pytest.fixture
def kube_namespace(kube_api: KubeApi, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace name no other test uses (not created); deleted with its pods afterwards."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{slug}-{meta.random_suffix(4)}"
    yield name
    kube_api.server.delete_namespace(name)


KubeUser = Callable[..., Path]


@pytest.fixture
def kube_user(kube_api: KubeApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeUser]:
    """Make a limited identity: `kube_user("alice", namespace="ns", role="edit")` registers a
    bearer token for user alice, binds ClusterRole `role` to her in `namespace` with a
    RoleBinding (no binding when namespace is None) and returns a kubeconfig (context
    devloop-kubeapi, default namespace `namespace`). `server=` points it at a fault front.
    Tokens are revoked after the test; `kube_api.server.auth.revoke(token)` does it earlier
    (read the token from the kubeconfig, or pass `token=`)."""
    tokens: list[str] = []

    def make(
        user: str,
        namespace: str | None = None,
        role: str = "edit",
        groups: tuple[str, ...] = (),
        token: str | None = None,
        server: str | None = None,
    ) -> Path:
        token = kube_api.server.auth.add_user(user, groups, token)
        tokens.append(token)
        if namespace is not None:
            kube_api.server.grant(namespace, user, role)
        path = tmp_path_factory.mktemp("kubeuser") / "kubeconfig"
        return kube_api.server.write_kubeconfig(
            path, kube_api.context, namespace or "default", token=token, server=server
        )

    yield make
    for token in tokens:
        kube_api.server.auth.revoke(token)


@dataclass(frozen=True)
class KubeFault:
    """A fault front before the session's server, and an admin kubeconfig that goes through it."""

    front: FaultFront
    kubeconfig: Path
    context: str
    url: str


@pytest.fixture
def kube_fault(kube_api: KubeApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeFault]:
    """A FaultFront (tests/kubeapi/faults.py) started for this test: switch faults with
    `kube_fault.front.add(Rule(...))`, `.blackhole()`, `.reset_all()`, `.refuse()`, `.delay()`.
    For a limited identity through it: `kube_user(..., server=kube_fault.url)`."""
    front = FaultFront(kube_api.url).start()
    try:
        path = tmp_path_factory.mktemp("kubefault") / "kubeconfig"
        kube_api.server.write_kubeconfig(path, kube_api.context, server=front.url)
        yield KubeFault(front, path, kube_api.context, front.url)
    finally:
        front.stop()


@pytest.fixture
def kube_services(kube_api: KubeApi) -> Iterator[KubeApiServer]:
    """Services map `port` -> `targetPort` through a proxy, as in a cluster, for this test (the
    session default keeps the old behaviour: the service name resolves to the pods)."""
    kube_api.server.services.enabled = True
    try:
        yield kube_api.server
    finally:
        kube_api.server.services.enabled = False
        kube_api.server.controllers.reconcile()
