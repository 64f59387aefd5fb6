"""A credential the API server rejects mid-session (issue 14, item 4): said once, and the
kubeconfig re-read (as an exec credential plugin would refresh the token in it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import yaml

from devloop.runtime.kubernetes.client import connect
from devloop.runtime.kubernetes.rest import KubeApiError

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeApi, KubeUser


def test_rejected_token_is_said_once_and_the_kubeconfig_reread(
    kube_api: KubeApi,
    kube_user: KubeUser,
    kube_namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from devloop.config import load

    ns = f"i14c-{kube_namespace}"[:50]
    path = kube_user("i14c-bob", namespace=ns, role="edit")
    monkeypatch.setenv("KUBECONFIG", str(path))
    (path.parent / "Dockerfile").write_text("FROM devloop/busybox:latest\n")
    (path.parent / "devloop.yaml").write_text(
        f"name: i14ccred\nkubernetes: {{context: devloop-kubeapi, namespace: {ns}}}\n"
        "services: {web: {image: i14c/cred, context: ., archetype: web}}\n"
    )
    try:
        rest = connect(load(path.parent), None).rest
        pods = f"/api/v1/namespaces/{ns}/pods"
        assert rest.get(pods)["items"] == []

        doc = yaml.safe_load(path.read_text())
        old = doc["users"][0]["user"]["token"]
        kube_api.server.auth.revoke(old)  # expired
        with pytest.raises(KubeApiError) as caught:
            rest.get(pods)
        assert caught.value.status == 401
        assert "credentials rejected by the API server (401)" in str(caught.value)

        # the plugin wrote a fresh token: the next call uses it
        doc["users"][0]["user"]["token"] = kube_api.server.auth.add_user("i14c-bob")
        path.write_text(yaml.safe_dump(doc))
        assert rest.get(pods)["items"] == []
        err = capsys.readouterr().err
        assert err.count("credentials rejected by the API server (401)") == 1, err
    finally:
        kube_api.server.delete_namespace(ns)
