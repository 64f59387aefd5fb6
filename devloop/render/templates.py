"""Render each service's Jinja manifests into labelled, ordered Kubernetes objects."""

from __future__ import annotations

import base64
import json
import os
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import jinja2
import jinja2.sandbox

from devloop.errors import ConfigError, TemplateError
from devloop.model.manifest import (
    CLUSTER_SCOPED,
    KIND_ORDER,
    LABEL_SERVICE,
    Manifest,
    project_labels,
)
from devloop.model.paths import display_path
from devloop.render import yamlio
from devloop.render.images import pin

if TYPE_CHECKING:
    from devloop.model.project import Project, Service


BUILTIN_PACKAGE = "devloop.templates"


def builtin_templates() -> Traversable:
    """The archetypes as package resources: a directory, a zip or an editable install alike."""
    return resources.files(BUILTIN_PACKAGE)


class ResourceLoader(jinja2.BaseLoader):
    """Templates read from a Traversable (importlib.resources), never through a path string, so
    they load from a wheel, a zip or an editable install. The name a template carries in
    messages and tracebacks is `builtin:<name>`."""

    def __init__(self, root: Traversable) -> None:
        self.root = root

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        node = self.root
        for part in template.split("/"):
            if part in ("", ".", ".."):
                raise jinja2.TemplateNotFound(template)
            node = node.joinpath(part)
        if not node.is_file():
            raise jinja2.TemplateNotFound(template)
        return node.read_text(encoding="utf-8"), f"builtin:{template}", lambda: True

    def list_templates(self) -> list[str]:
        return sorted(n.name for n in self.root.iterdir() if n.name.endswith(".j2"))


def render(
    project: Project,
    images: Mapping[str, str],
    services: Iterable[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> list[Manifest]:
    """Render `services` (all by default) with `images` (service → reference).

    A service missing from `images` gets `<image>:latest`. Raises TemplateError naming the
    template file and line for anything a template gets wrong.
    """
    env = _environment(project.root)
    out: list[Manifest] = []
    for name in services if services is not None else project.services:
        if name not in project.services:
            raise ConfigError(f"unknown service '{name}' (services: {', '.join(project.services)})")
        svc = project.services[name]
        context = _context(project, svc, images.get(name, f"{svc.image}:latest"), environ)
        for template in _templates(project, svc):
            out.extend(_render_one(env, template, context, project, svc))
    _check_unique(out)
    built = _built(project, images)
    out = [replace(m, replaced=r) if (r := pin(m, built)) else m for m in out]
    return sorted(out, key=_order)


def dump(manifests: Iterable[Manifest]) -> str:
    """One multi-document YAML stream, byte-identical for identical input. A comment above an
    object names the image references devloop replaced in it."""
    return "".join("---\n" + _said(m) + yamlio.dump(m.obj) for m in manifests)


def _said(m: Manifest) -> str:
    if not m.replaced:
        return ""
    return "# devloop replaced image references with the built tag:\n" + "".join(
        f"#   {line}\n" for line in m.replaced
    )


def _built(project: Project, images: Mapping[str, str]) -> dict[str, str]:
    """Repository → built reference, for every service with a reference in `images`: the
    repository as the config names it, and with the registry prefix."""
    out: dict[str, str] = {}
    prefix = f"{project.registry.rstrip('/')}/" if project.registry else ""
    for name, ref in images.items():
        svc = project.services.get(name)
        if svc is None:
            continue
        out[svc.image] = ref
        if prefix and svc.image.startswith(prefix):
            out.setdefault(svc.image.removeprefix(prefix), ref)
    return out


def _environment(root: Path) -> jinja2.Environment:
    # Project templates are named by their path from devloop.yaml's directory, in the manifests
    # list and in {% include %} alike; the archetypes are "builtin:<name>".
    loader = jinja2.ChoiceLoader(
        [
            jinja2.PrefixLoader({"builtin": ResourceLoader(builtin_templates())}, delimiter=":"),
            jinja2.FileSystemLoader(str(root)),
        ]
    )
    # Sandboxed: a template from an untrusted pull request rendered in CI must not reach
    # Python internals (`cycler.__init__.__globals__.os`); FileSystemLoader keeps includes
    # inside the project (no `..`).
    env = jinja2.sandbox.SandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(
        to_yaml=lambda v, indent=0: _indent(yamlio.dump(v).rstrip("\n"), indent),
        to_json=lambda v: json.dumps(v, sort_keys=True),
        b64encode=lambda v: base64.b64encode(str(v).encode()).decode(),
        b64decode=lambda v: base64.b64decode(str(v)).decode(),
        quote=lambda v: json.dumps(str(v)),
        shquote=lambda v: shlex.quote(str(v)),
    )
    return env


def _indent(text: str, width: int) -> str:
    if not width:
        return text
    pad = " " * width
    return "\n".join(
        (pad + line) if i and line else line for i, line in enumerate(text.splitlines())
    )


def _templates(project: Project, svc: Service) -> list[str]:
    if svc.manifests:  # config.load made sure they are files inside the project
        return [p.relative_to(project.root).as_posix() for p in svc.manifests]
    return [f"builtin:{svc.archetype}.yaml.j2"]


def _context(
    project: Project, svc: Service, image: str, environ: Mapping[str, str] | None
) -> dict[str, Any]:
    """What a template sees. `values` is the project's values with the service's merged on top."""
    values = _merge(dict(project.values), dict(svc.values))
    return {
        "project": project.name,
        "namespace": project.namespace,
        "profile": project.profiles[-1] if project.profiles else "",
        "profiles": list(project.profiles),
        "service": {
            "name": svc.name,
            "image": image,
            "repository": svc.image,
            "ports": [{"local": p.local, "container": p.container} for p in svc.ports],
            "env": dict(svc.env),
            "values": dict(svc.values),
        },
        "name": svc.name,
        "image": image,
        "values": values,
        "env": dict(os.environ if environ is None else environ),
    }


def _render_one(
    env: jinja2.Environment, template: str, context: dict[str, Any], project: Project, svc: Service
) -> list[Manifest]:
    shown = _shown(template, project, svc)
    text = _render_text(env, template, context, shown)
    try:
        docs = yamlio.load_all(text)
    except ValueError as exc:
        raise TemplateError(f"{shown}: rendered output is not valid YAML: {exc}") from None
    out = []
    for i, obj in enumerate(docs):
        if obj is None:
            continue
        _require_object(obj, shown, i)
        _label(obj, project, svc)
        out.append(Manifest(obj=_ordered(obj), service=svc.name, template=shown))
    return out


def _shown(template: str, project: Project, svc: Service) -> str:
    """How a template is named in messages: its path as the user would type it."""
    if template.startswith("builtin:"):
        return f"archetype {svc.archetype} ({template.removeprefix('builtin:')})"
    return display_path(project.root / template)


def _render_text(
    env: jinja2.Environment, template: str, context: dict[str, Any], shown: str
) -> str:
    own = ""
    try:
        tpl = env.get_template(template)
        own = tpl.filename or ""
        return tpl.render(context)
    except jinja2.TemplateSyntaxError as exc:
        where = _template_name(exc.filename or own, own, shown)
        raise TemplateError(f"{where}:{exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"{shown}: template '{exc.name}' not found") from None
    except Exception as exc:  # anything a template raises while rendering: name the line
        where = _template_frame(exc.__traceback__, own, shown) or f"{shown}:?"
        raise TemplateError(f"{where}: {_describe(exc)}") from None


def _template_frame(tb: TracebackType | None, own: str, shown: str) -> str | None:
    """`file:line` of the innermost template frame (Jinja rewrites frames to template lines)."""
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename == own or (not filename.endswith(".py") and Path(filename).is_file()):
            found = f"{_template_name(filename, own, shown)}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def _template_name(filename: str, own: str, shown: str) -> str:
    """`shown` for the template being rendered, the path of any file it includes."""
    return shown if not filename or filename == own else display_path(Path(filename))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"not allowed in a template: {exc}"
    if isinstance(exc, jinja2.UndefinedError):
        return f"undefined value: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def _require_object(obj: Any, template: str, index: int) -> None:
    what = f"{template}: document {index + 1}"
    if not isinstance(obj, dict):
        raise TemplateError(f"{what} is not a Kubernetes object (got {type(obj).__name__})")
    for key in ("apiVersion", "kind"):
        if not obj.get(key):
            raise TemplateError(f"{what} is not a Kubernetes object: missing '{key}'")
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise TemplateError(
            f"{what} ({obj['kind']}) is not a Kubernetes object: missing 'metadata.name'"
        )


def _label(obj: dict[str, Any], project: Project, svc: Service) -> None:
    labels = {**project_labels(project.name), LABEL_SERVICE: svc.name}
    meta = obj["metadata"]
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    if obj["kind"] not in CLUSTER_SCOPED:
        meta.setdefault("namespace", project.namespace)
    head = {k: meta[k] for k in ("name", "namespace", "labels") if k in meta}
    obj["metadata"] = {**head, **{k: v for k, v in meta.items() if k not in head}}
    for pod in Manifest(obj, svc.name, "").pod_templates():
        if pod is obj:
            continue
        pmeta = pod.setdefault("metadata", {})
        pmeta["labels"] = {**(pmeta.get("labels") or {}), **labels}


def _ordered(obj: dict[str, Any]) -> dict[str, Any]:
    head: dict[str, Any] = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
    return {**head, **{k: v for k, v in obj.items() if k not in head}}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, mapping by mapping (a service's values refine the project's)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def _order(m: Manifest) -> tuple[int, str, str, str]:
    rank = KIND_ORDER.index(m.kind) if m.kind in KIND_ORDER else len(KIND_ORDER)
    return (rank, m.namespace or "", m.kind, m.name)


def _check_unique(manifests: list[Manifest]) -> None:
    seen: dict[tuple[str, str | None, str], Manifest] = {}
    for m in manifests:
        key = (m.kind, m.namespace, m.name)
        if key in seen:
            other = seen[key]
            raise TemplateError(
                f"{m.template}: {m.kind} '{m.name}' is also rendered by {other.template} (service "
                f"'{other.service}')"
            )
        seen[key] = m
