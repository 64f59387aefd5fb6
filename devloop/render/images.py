"""Pin the image references of existing manifests: every reference that names a built image
(`image: leeroy-web`, `leeroy-web:v1`) becomes the tag devloop built, as Skaffold and Tilt do.

Looked at: the containers, init containers and ephemeral containers of every pod template,
and every `image` field of the custom resources whose schema is known to hold images there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from devloop.model.manifest import Manifest

# API groups of custom resources whose `image` fields (anywhere in the object) are container
# images: Argo (Rollouts, Workflows), Knative Serving, Tekton, Kubeflow, KubeRay, Volcano.
IMAGE_CRD_GROUPS = frozenset(
    {
        "argoproj.io",
        "serving.knative.dev",
        "tekton.dev",
        "kubeflow.org",
        "ray.io",
        "batch.volcano.sh",
    }
)
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def repository(ref: str) -> str:
    """`ref` without its tag and digest: `host:5000/a/b:1@sha256:…` → `host:5000/a/b`."""
    ref = ref.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return ref[: len(ref) - len(last) + last.index(":")] if ":" in last else ref


def pin(manifest: Manifest, built: Mapping[str, str]) -> tuple[str, ...]:
    """Replace in `manifest.obj` each image reference whose repository is a key of `built`
    (repository → built reference) by its value; return one line per replacement:
    `spec.template.spec.containers[0].image: web -> web:3f2a…`."""
    said = []
    for where, holder, key in _image_fields(manifest):
        ref = holder.get(key)
        if not isinstance(ref, str):
            continue
        new = built.get(repository(ref))
        if new is not None and new != ref:
            holder[key] = new
            said.append(f"{where}: {ref} -> {new}")
    return tuple(said)


def _image_fields(m: Manifest) -> Iterator[tuple[str, dict[str, Any], str]]:
    group = str(m.obj.get("apiVersion", "")).rpartition("/")[0]
    if group in IMAGE_CRD_GROUPS:
        yield from _every_image(m.obj, "")
        return
    for pod in m.pod_templates():
        spec = pod.get("spec")
        if not isinstance(spec, dict):
            continue
        base = _path_to(m, pod)
        for kind in _CONTAINER_LISTS:
            for i, c in enumerate(spec.get(kind) or []):
                if isinstance(c, dict):
                    yield f"{base}spec.{kind}[{i}].image", c, "image"


def _path_to(m: Manifest, pod: dict[str, Any]) -> str:
    if pod is m.obj:
        return ""
    return "spec.jobTemplate.spec.template." if m.kind == "CronJob" else "spec.template."


def _every_image(node: Any, at: str) -> Iterator[tuple[str, dict[str, Any], str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            here = f"{at}.{k}" if at else str(k)
            if k == "image" and isinstance(v, str):
                yield here, node, k
            else:
                yield from _every_image(v, here)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _every_image(v, f"{at}[{i}]")
