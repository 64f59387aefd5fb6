"""Pod volumes as host directories bind-mounted into the containers: configMap, secret, emptyDir.

Not modelled: updates of a mounted ConfigMap/Secret after the pod started, projected and
downwardAPI volumes, PersistentVolumeClaims, hostPath, sizeLimit.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from tests.kubeapi.meta import Obj
from tests.kubeapi.resources import CONFIGMAPS, SECRETS
from tests.kubeapi.store import Store


class MountError(Exception):
    """A volume cannot be set up yet (the kubelet's FailedMount)."""


def _write(directory: Path, data: dict[str, bytes], items: list[Obj] | None, mode: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    wanted = [(i["key"], i.get("path", i["key"]), i.get("mode", mode)) for i in items or []] or [
        (k, k, mode) for k in data
    ]
    for key, rel, file_mode in wanted:
        if key not in data:
            continue
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[key])
        target.chmod(file_mode)


def prepare(store: Store, root: Path, pod: Obj) -> dict[str, Path]:
    """Host directories of the pod's volumes, by volume name; MountError if one cannot be."""
    namespace = pod["metadata"]["namespace"]
    found: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        directory = root / name
        if "emptyDir" in volume:
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o777)  # as the kubelet makes it: any user writes
        elif "configMap" in volume or "secret" in volume:
            secret = "secret" in volume
            source = volume["secret" if secret else "configMap"]
            ref = source.get("secretName" if secret else "name", "")
            obj = store.find(SECRETS if secret else CONFIGMAPS, namespace, ref)
            if obj is None and not source.get("optional"):
                what = "secret" if secret else "configmap"
                raise MountError(
                    f'MountVolume.SetUp failed for volume "{name}" : {what} "{ref}" not found'
                )
            data: dict[str, bytes] = {}
            for key, value in ((obj or {}).get("data") or {}).items():
                data[key] = base64.b64decode(value) if secret else str(value).encode()
            for key, value in ((obj or {}).get("binaryData") or {}).items():
                data[key] = base64.b64decode(value)
            _write(directory, data, source.get("items"), int(source.get("defaultMode", 0o644)))
        else:
            continue  # other volume types: nothing mounted
        found[name] = directory
    return found


def binds(c: Obj, volumes: dict[str, Path]) -> list[str]:
    """Docker bind specs for the container's volumeMounts."""
    out = []
    for mount in c.get("volumeMounts") or []:
        host = volumes.get(mount["name"])
        if host is None:
            continue
        if mount.get("subPath"):
            host = host / mount["subPath"]
            if not host.exists():
                host.mkdir(parents=True, exist_ok=True)
        out.append(f"{host}:{mount['mountPath']}:{'ro' if mount.get('readOnly') else 'rw'}")
    return out
