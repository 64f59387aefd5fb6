"""`devloop doctor`'s checks: each one says what it found and, when something is wrong, how to fix
it.

A check never raises: whatever goes wrong becomes a failed Check with the message
that came back, so that one broken part does not hide the state of the others.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import docker
import requests

from devloop.build.builder import Builder
from devloop.clients import docker as engine
from devloop.clients.kubeconfig import configuration, context_name, current_context
from devloop.clients.registry import Registry, RegistryError
from devloop.errors import DevloopError, RuntimeUnavailable
from devloop.model.events import Event
from devloop.model.manifest import project_labels
from devloop.model.project import Project, Service
from devloop.runtime.kubernetes.client import probe
from devloop.runtime.kubernetes.images import load_command
from devloop.runtime.kubernetes.rest import Rest
from devloop.watch import survey
from devloop.watch.roots import watch_roots

Status = Literal["ok", "fail", "warn", "skip"]
PROBE = "command -v sh && command -v tar && command -v dd"
# Run as the image's user: the directories under each sync dest (or the nearest existing
# parent) it cannot write into, where a sync would fail ("can't remove old file").
WRITABLE = r"""id -u
for d in "$@"; do
  p=$d
  while [ ! -e "$p" ]; do p=${p%/*}; p=${p:-/}; done
  find "$p" -xdev -type d 2>/dev/null | while IFS= read -r x; do [ -w "$x" ] || echo "$x"; done
done"""
TIMEOUT = 10.0
# fixes speak of the user's machine, never of devloop's own Makefile or CI scripts
START_ENGINE = (
    "start the engine: `sudo systemctl start docker` (install it with `sudo apt-get install "
    "docker.io` on Debian/Ubuntu, or Docker Desktop); if it runs elsewhere, point DOCKER_HOST "
    "at it"
)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def docker_engine() -> tuple[Check, docker.DockerClient | None]:
    """Reachable, and which version: the engine every build and the docker target use."""
    where = engine.engine_host()
    try:
        client = engine.connect()
    except RuntimeUnavailable as exc:
        return Check(
            "docker engine", "fail", str(exc).replace("the Docker engine at ", ""), START_ENGINE
        ), None
    try:
        v = client.version()
    except (docker.errors.DockerException, requests.RequestException) as exc:
        client.close()
        return Check(
            "docker engine",
            "fail",
            f"{where} answers a ping but not /version: {_short(exc)}",
            START_ENGINE,
        ), None
    detail = f"Docker Engine {v.get('Version', '?')} (API {v.get('ApiVersion', '?')}) at {where}"
    return Check("docker engine", "ok", detail), client


def kube(project: Project | None, context_flag: str | None = None) -> Check:
    """The kube context (configured, named, or current) exists and its API server answers."""
    configured = context_flag or (project.kube_context if project else None)
    context = configured or current_context()
    if context is None:
        return Check("kubernetes", "skip", "no kube context configured or current")
    try:
        rest = Rest(configuration(context_name(context)))
        version = probe(rest, context)
    except DevloopError as exc:  # kubeconfig errors, TLS, refused, timeouts: all say the same
        status: Status = (
            "fail" if configured or (project and project.target == "kubernetes") else "warn"
        )
        return Check(
            "kubernetes",
            status,
            f"context {context}: API server not reachable: {_short(exc)}",
            f"start the cluster or fix the context (`kubectl --context {context} version`); "
            "or choose another with `devloop dev --context NAME`",
        )
    return Check("kubernetes", "ok", f"context {context}: API server {version} answers")


def cluster_cli(project: Project | None, context_flag: str | None = None) -> Check:
    """The CLI that loads images into the context's local cluster (kind, k3d, minikube) is on
    PATH, unless a registry delivers them."""
    context = context_flag or (project.kube_context if project else None) or current_context()
    argv = load_command(context, "x") if context else None
    if argv is None:
        return Check("cluster CLI", "skip", "the kube context needs no CLI to load images")
    if project is not None and project.registry:
        return Check("cluster CLI", "skip", f"images go through registry {project.registry}")
    if shutil.which(argv[0]) is None:
        return Check(
            "cluster CLI",
            "fail",
            f"context {context} loads images with `{argv[0]}`, which is not on PATH",
            f"install {argv[0]}, or set `registry` in devloop.yaml",
        )
    return Check("cluster CLI", "ok", f"{argv[0]} on PATH loads images into {context}")


def registry(project: Project | None) -> Iterator[Check]:
    """The configured registry: reachable, TLS valid (as the daemon checks it), and Docker's
    credentials for it present and accepted (a token request or `GET /v2/`), with their source."""
    if project is None or not project.registry:
        yield Check("registry", "skip", "no registry configured (images stay on the local engine)")
        return
    host = project.registry.split("/")[0]
    try:
        with Registry(host, project.registry_insecure, TIMEOUT) as reg:
            ping = reg.ping()
    except RegistryError as exc:
        yield Check("registry", "fail", str(exc), _registry_fix(exc.reason, host))
        return
    yield Check("registry", "ok", f"{ping.url} answers; TLS: {ping.tls}")
    creds = ping.credentials
    if creds.present:
        yield Check("registry login", "ok", f"credentials from {creds.source}: {ping.login}")
    else:  # /v2/ answered without a login: an open registry (a push may still ask for one)
        yield Check("registry login", "ok", f"no credentials ({creds.source}): none needed")


def _registry_fix(reason: str, host: str) -> str:
    if "TLS" in reason or "docker login" in reason or "not allowed" in reason:
        return ""  # the reason already says what to do
    return (
        f"start it (a local one: `docker run -d -p {_port(host)}:5000 --restart=always "
        "registry:2`) or fix `registry:` in devloop.yaml"
    )


def _port(host: str) -> str:
    _, sep, port = host.rpartition(":")
    return port if sep and port.isdigit() else "5000"


def inotify(project: Project | None) -> Check:
    """The watches this project needs against the kernel's per-user limit."""
    limit = survey.inotify_limit()
    if limit is None:
        return Check("inotify", "skip", "no inotify on this system (devloop polls instead)")
    if project is None:
        return Check(
            "inotify", "ok", f"limit {limit} watches (no devloop.yaml here to count against)"
        )
    needed = watch_roots(project, project.services).watches
    detail = f"{needed} watches needed, limit {limit}"
    value = max(524288, needed * 2)
    fix = (
        f"raise it: `sudo sysctl fs.inotify.max_user_watches={value}`; to keep it after a "
        f"reboot: `echo fs.inotify.max_user_watches={value} | sudo tee "
        f"/etc/sysctl.d/90-devloop.conf`"
    )
    if needed > limit:
        return Check("inotify", "fail", detail, fix)
    if needed > limit // 2:  # other programs (editors, IDEs) hold watches too
        return Check("inotify", "warn", detail + ": other programs share that limit", fix)
    return Check("inotify", "ok", detail)


def images(project: Project, client: docker.DockerClient) -> Iterator[Check]:
    """Each synced service's image has sh, tar and dd, which the sync agent runs."""
    for svc in project.services.values():
        if not svc.sync:
            yield Check(
                f"image {svc.name}", "skip", "no sync rules: every change rebuilds, no tools needed"
            )
            continue
        check, ref = _image(project, svc, client)
        yield check
        if check.status == "ok" and ref:
            yield _writable(project, svc, client, ref)


def _image(project: Project, svc: Service, client: docker.DockerClient) -> tuple[Check, str | None]:
    name = f"image {svc.name}"
    try:
        ref = Builder(project, client, _quiet, push=False).build([svc.name])[svc.name].ref
    except DevloopError as exc:
        return Check(
            name,
            "fail",
            f"cannot build it to look inside: {_short(exc)}",
            f"fix the build first: `devloop build {svc.name}`",
        ), None
    try:
        code, out = _probe(client, ref, project, svc, ["sh", "-c", PROBE], "0")
    except docker.errors.DockerException as exc:
        code, out = -1, _short(exc)
    if code != 0:
        return Check(
            name,
            "fail",
            f"{ref} lacks sh, tar or dd for the sync agent: {out or f'exit {code}'}",
            "base the image on one with a shell, tar and dd (busybox has all three); "
            "without them every change rebuilds instead of syncing",
        ), None
    tools = " ".join(line.strip() for line in out.splitlines() if line.strip())
    return Check(name, "ok", f"{ref} has {tools}"), ref


def _writable(project: Project, svc: Service, client: docker.DockerClient, ref: str) -> Check:
    """The sync destinations are writable by the user the image runs as (a manifest's
    securityContext can still choose another)."""
    name = f"sync dest {svc.name}"
    dests = sorted({r.dest for r in svc.sync})
    try:
        code, out = _probe(client, ref, project, svc, ["sh", "-c", WRITABLE, "sh", *dests], None)
    except docker.errors.DockerException as exc:
        return Check(name, "warn", f"could not look: {_short(exc)}")
    uid, *denied = [line for line in out.splitlines() if line.strip()] or ["?"]
    if code != 0:
        return Check(name, "warn", f"could not look: exit {code}: {out.strip()[-300:]}")
    if denied:
        shown = ", ".join(denied[:3]) + (f" and {len(denied) - 3} more" if len(denied) > 3 else "")
        return Check(
            name,
            "fail",
            f"user {uid} of {ref} cannot write into {shown}: syncs there fail",
            "give the directories to the image's user in the Dockerfile "
            "(`COPY --chown=<user> ...` or `RUN chown -R <user> <dest>`), or sync elsewhere",
        )
    return Check(name, "ok", f"user {uid} of {ref} can write into {', '.join(dests)}")


def _probe(
    client: docker.DockerClient,
    ref: str,
    project: Project,
    svc: Service,
    argv: list[str],
    user: str | None,
) -> tuple[int, str]:
    """Run `argv` in a throwaway container of `ref` as `user` (None: the image's): exit code and
    output. The container always goes."""
    container = client.containers.create(
        ref,
        entrypoint=argv[:1],
        command=argv[1:],
        user=user or "",
        name=f"devloop-doctor-{svc.name}-{uuid.uuid4().hex[:6]}",
        labels={**project_labels(project.name), "devloop.dev/doctor": "true"},
    )
    try:
        container.start()
        code = int(container.wait(timeout=60)["StatusCode"])
        return code, container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


def _quiet(event: Event) -> None:
    """Doctor builds silently: only the verdict matters."""


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."
