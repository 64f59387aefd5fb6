"""Server-side printing: the meta.k8s.io/v1 Table `kubectl get` asks for (Accept: ...;as=Table).

Columns for pods, deployments, replicasets, services, namespaces, configmaps, secrets, events;
other kinds get NAME and AGE like a CRD without printer columns. Not modelled: -o wide
priority columns, Tables on watches.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.kubeapi.meta import Obj


def age(stamp: str | None) -> str:
    """HumanDuration as kubectl prints it: 5s, 3m, 2m5s, 4h, 3d."""
    if not stamp:
        return "<unknown>"
    then = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    s = max(0, int((dt.datetime.now(dt.UTC) - then).total_seconds()))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    return f"{h}h" if h < 48 else f"{h // 24}d"


def _pod_status(pod: Obj) -> str:
    status = pod.get("status") or {}
    if "deletionTimestamp" in pod["metadata"]:
        return "Terminating"
    for c in status.get("initContainerStatuses") or []:
        state = c.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason") != "PodInitializing":
            return f"Init:{state['waiting']['reason']}"
        if "terminated" in state and state["terminated"].get("exitCode"):
            return f"Init:{state['terminated'].get('reason', 'Error')}"
    reason = status.get("reason") or status.get("phase", "Unknown")
    for c in status.get("containerStatuses") or []:
        state = c.get("state") or {}
        if "waiting" in state:
            reason = state["waiting"].get("reason", reason)
        elif "terminated" in state:
            reason = state["terminated"].get("reason", reason)
    return str(reason)


def _columns(kind: str) -> list[tuple[str, str]]:
    columns = {
        "Pod": [("Ready", "string"), ("Status", "string"), ("Restarts", "string")],
        "Deployment": [("Ready", "string"), ("Up-to-date", "integer"), ("Available", "integer")],
        "ReplicaSet": [("Desired", "integer"), ("Current", "integer"), ("Ready", "integer")],
        "Service": [
            ("Type", "string"),
            ("Cluster-IP", "string"),
            ("External-IP", "string"),
            ("Port(s)", "string"),
        ],
        "Namespace": [("Status", "string")],
        "ConfigMap": [("Data", "integer")],
        "Secret": [("Type", "string"), ("Data", "integer")],
        "Event": [("Type", "string"), ("Reason", "string"), ("Message", "string")],
    }
    return [("Name", "string"), *columns.get(kind, []), ("Age", "string")]


def _cells(obj: Obj) -> list[Any]:
    kind, md = obj.get("kind", ""), obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "Pod":
        statuses = status.get("containerStatuses") or []
        ready = sum(1 for c in statuses if c.get("ready"))
        restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
        total = len(spec.get("containers") or [])
        middle: list[Any] = [f"{ready}/{total}", _pod_status(obj), str(restarts)]
    elif kind == "Deployment":
        middle = [
            f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            status.get("updatedReplicas", 0),
            status.get("availableReplicas", 0),
        ]
    elif kind == "ReplicaSet":
        middle = [
            spec.get("replicas", 1),
            status.get("replicas", 0),
            status.get("readyReplicas", 0),
        ]
    elif kind == "Service":
        ports = ",".join(
            f"{p['port']}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/"
            f"{p.get('protocol', 'TCP')}"
            for p in spec.get("ports") or []
        )
        external = "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"
        middle = [
            spec.get("type", "ClusterIP"),
            spec.get("clusterIP", ""),
            external,
            ports or "<none>",
        ]
    elif kind == "Namespace":
        middle = [status.get("phase", "Active")]
    elif kind == "ConfigMap":
        middle = [len(obj.get("data") or {}) + len(obj.get("binaryData") or {})]
    elif kind == "Secret":
        middle = [obj.get("type", "Opaque"), len(obj.get("data") or {})]
    elif kind == "Event":
        middle = [obj.get("type", ""), obj.get("reason", ""), obj.get("message", "")]
    else:
        middle = []
    return [md["name"], *middle, age(md.get("creationTimestamp"))]


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def table(kind: str, api_version: str, items: list[Obj], list_meta: Obj | None = None) -> Obj:
    rows = []
    for item in items:
        item = {"kind": kind, "apiVersion": api_version} | item
        rows.append(
            {
                "cells": _cells(item),
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item["metadata"],
                },
            }
        )
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": [
            {
                "name": name,
                "type": type_,
                "format": "name" if name == "Name" else "",
                "description": "",
                "priority": 0,
            }
            for name, type_ in _columns(kind)
        ],
        "rows": rows,
    }
