"""The test API server's pure parts: server-side apply, patches, selectors, watch visibility."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.kubeapi import apply, defaults, patch
from tests.kubeapi.meta import ApiError
from tests.kubeapi.resources import CONFIGMAPS, DEPLOYMENTS
from tests.kubeapi.selectors import match_selector, matcher, parse_labels
from tests.kubeapi.server import Target
from tests.kubeapi.store import Change, Store
from tests.kubeapi.watch import translate


def deployment(**labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "img:1"}]},
            },
        },
    }


def test_apply_drops_what_the_manager_stopped_applying() -> None:
    first = apply.apply(DEPLOYMENTS, None, deployment(team="a", tier="web"), "devloop", force=False)
    second = apply.apply(DEPLOYMENTS, first, deployment(team="a"), "devloop", force=False)
    assert second["metadata"]["labels"] == {"team": "a"}
    entry = second["metadata"]["managedFields"][0]
    assert (entry["manager"], entry["operation"], entry["fieldsType"]) == (
        "devloop",
        "Apply",
        "FieldsV1",
    )
    assert "f:team" in entry["fieldsV1"]["f:metadata"]["f:labels"]


def test_apply_keeps_fields_other_managers_own_and_reports_conflicts() -> None:
    live = apply.apply(DEPLOYMENTS, None, deployment(), "devloop", force=False)
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    scaled["metadata"].setdefault("annotations", {})["note"] = "kept"
    apply.record_update(DEPLOYMENTS, live, scaled, "kubectl-scale")
    with pytest.raises(ApiError) as conflict:
        apply.apply(DEPLOYMENTS, scaled, deployment(), "devloop", force=False)
    assert conflict.value.code == 409 and conflict.value.reason == "Conflict"
    assert 'conflict with "kubectl-scale": .spec.replicas' in conflict.value.message
    forced = apply.apply(DEPLOYMENTS, scaled, deployment(), "devloop", force=True)
    assert forced["spec"]["replicas"] == 2 and forced["metadata"]["annotations"] == {"note": "kept"}


def test_merge_and_strategic_patches() -> None:
    live = deployment(team="a")
    merged = patch.merge_patch(live, {"metadata": {"labels": {"team": None, "x": "y"}}})
    assert merged["metadata"]["labels"] == {"x": "y"}
    sidecar = {"spec": {"template": {"spec": {"containers": [{"name": "log", "image": "log:1"}]}}}}
    assert [
        c["name"]
        for c in patch.merge_patch(live, sidecar)["spec"]["template"]["spec"]["containers"]
    ] == ["log"]
    strategic = patch.strategic_merge(live, sidecar)
    assert [c["name"] for c in strategic["spec"]["template"]["spec"]["containers"]] == [
        "web",
        "log",
    ]
    assert (
        patch.json_patch(live, [{"op": "replace", "path": "/spec/replicas", "value": 3}])["spec"][
            "replicas"
        ]
        == 3
    )


def test_label_selectors() -> None:
    labels = {"app": "web", "tier": "front"}
    assert parse_labels("app=web,tier in (front, back),!gone")(labels)
    assert not parse_labels("app!=web")(labels)
    assert parse_labels("tier notin (back)")(labels) and not parse_labels("missing")(labels)
    assert match_selector(
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}, labels
    )


def test_defaults_and_validation() -> None:
    d = deployment()
    defaults.prepare(DEPLOYMENTS, d, None)
    container = d["spec"]["template"]["spec"]["containers"][0]
    assert (container["imagePullPolicy"], d["spec"]["strategy"]["type"]) == (
        "IfNotPresent",
        "RollingUpdate",
    )
    bad = deployment()
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiError) as invalid:
        defaults.prepare(DEPLOYMENTS, bad, None)
    assert (
        invalid.value.code == 422
        and "`selector` does not match template `labels`" in invalid.value.message
    )


def test_a_watch_sees_objects_leave_and_enter_its_selector() -> None:
    store = Store(history=2)
    seen: list[Change] = []
    store.add_listener(seen.append)
    cm = {"metadata": {"name": "c", "namespace": "ns", "labels": {"app": "web"}}, "data": {}}
    store.create(CONFIGMAPS, cm)
    store.mutate(CONFIGMAPS, "ns", "c", lambda o: o["metadata"].__setitem__("labels", {}))
    target, match = Target(CONFIGMAPS, "ns", None, None), matcher("app=web", None)
    assert [translate(c, target, match)[0] for c in seen] == ["ADDED", "DELETED"]  # type: ignore[index]
    assert int(seen[1].obj["metadata"]["resourceVersion"]) > int(
        seen[0].obj["metadata"]["resourceVersion"]
    )
    assert [
        c.type for c in store.changes_since(int(seen[0].obj["metadata"]["resourceVersion"]))
    ] == ["MODIFIED"]
    store.mutate(CONFIGMAPS, "ns", "c", lambda o: o.__setitem__("data", {"k": "v"}))
    with pytest.raises(ApiError) as expired:
        store.changes_since(1)
    assert expired.value.code == 410 and expired.value.reason == "Expired"
