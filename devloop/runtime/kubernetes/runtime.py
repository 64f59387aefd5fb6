"""The Kubernetes runtime: server-side apply and prune, rollout diagnosis, exec streams, logs and
port-forwards."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence

import docker

from devloop.build.deliver import ImageTarget
from devloop.errors import DeployError, DevloopError, SyncError
from devloop.model.events import Crashed, Emit, WarningEvent
from devloop.model.manifest import Manifest
from devloop.model.project import Project
from devloop.runtime import supervisor
from devloop.runtime.base import Instance, Transport
from devloop.runtime.kubernetes.apply import Applier, Ref
from devloop.runtime.kubernetes.client import Cluster, connect
from devloop.runtime.kubernetes.forward import PortForward
from devloop.runtime.kubernetes.images import ClusterImages
from devloop.runtime.kubernetes.kinds import Kinds
from devloop.runtime.kubernetes.listening import wait_listening
from devloop.runtime.kubernetes.logs import LogFollowers
from devloop.runtime.kubernetes.pods import (
    instance,
    is_ready,
    project_labels,
    restarts,
    service_of,
    service_pods,
    split_id,
)
from devloop.runtime.kubernetes.rest import Obj
from devloop.runtime.kubernetes.rollout import Rollout
from devloop.runtime.kubernetes.stream import KubeTransport, kube_exec
from devloop.runtime.kubernetes.supervise import ANNOTATION, Supervision
from devloop.runtime.kubernetes.synced import SyncMarks
from devloop.runtime.kubernetes.watch import PodWatch

# The kinds whose pods a rollout wait watches (a ReplicaSet or Job of a user is not waited for).
ROLLOUT_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Pod")


class KubernetesRuntime:
    """Runs a project's rendered manifests in a kube context's namespace."""

    name = "kubernetes"

    def __init__(
        self,
        project: Project,
        *,
        session: str,
        dev: bool,
        context_flag: str | None,
        docker: docker.DockerClient,
    ) -> None:
        self.project = project
        self.cluster: Cluster = connect(project, context_flag)  # raises before anything is built
        self.images: ImageTarget = ClusterImages(self.cluster.context, self.cluster.server)
        self._rest = self.cluster.rest
        self._namespace = self.cluster.namespace
        self._dev = dev
        self._kinds = Kinds(self._rest)
        self._applier = Applier(self._rest, self._kinds, self._namespace, project.name, session)
        self._supervision = Supervision(docker)
        self._rollout = Rollout(self._rest)
        self._marks = SyncMarks(self._rest, session)
        self._deployed_once = False
        self._applied: dict[tuple[str, str | None, str], Ref] = {}  # what this session applied
        self._workloads: dict[str, list[Ref]] = {}
        self._supervised: dict[str, bool] = {}  # pod name → runs under the supervisor
        self._pods = PodWatch(self._rest, self._namespace, project_labels(project.name))
        self._lock = threading.Lock()
        self._stops: list[threading.Event] = []  # what ends the background work close() must end
        # importing the client's CoreV1Api takes about a second: in `dev`, do it while the images
        # build, not on the first sync. Not a daemon: a process that exits while a daemon thread
        # is inside pydantic-core's Rust code (the client's models) aborts ("FATAL: exception not
        # rethrown", seen with `delete`), so exit waits for the import to end instead.
        if dev:
            threading.Thread(target=_warm_up, name="devloop-kube-import").start()

    @property
    def context(self) -> str:
        return self.cluster.context

    # -- deploy ----------------------------------------------------------------

    def deploy(self, manifests: Sequence[Manifest], services: Collection[str]) -> None:
        mine = [m for m in manifests if m.service in services]
        problems = _violations(mine)
        if problems:
            raise DeployError(
                "the rendered manifests would be rejected by the API server:\n  "
                + "\n  ".join(problems)
            )
        objects = [(self._supervision.wrap(m) if self._dev else m.obj, m.service) for m in mine]
        if not self._deployed_once:  # pods an earlier session synced into and left behind
            self._deployed_once = True
            self._marks.replace_stale(self._namespace, project_labels(self.project.name))
        refs = self._applier.apply(objects)
        with self._lock:
            self._applied.update((r.key, r) for r in refs)
            for service in services:
                self._workloads[service] = [
                    r for r in refs if r.service == service and r.kind.kind in ROLLOUT_KINDS
                ]
        for ref in self._applier.prune(refs, services):
            with self._lock:
                self._applied.pop(ref.key, None)

    def wait_ready(
        self, services: Collection[str], timeout: float, cancel: threading.Event | None = None
    ) -> None:
        with self._lock:
            workloads = {s: list(self._workloads.get(s, [])) for s in services}
        start = time.monotonic()
        self._rollout.wait(workloads, timeout, cancel)
        if cancel is not None and cancel.is_set():
            return
        wait_listening(
            self._rest,
            self._namespace,
            lambda s: service_pods(self._rest, self._namespace, self.project.name, s),
            [s for s, refs in workloads.items() if refs],
            timeout - (time.monotonic() - start),
            timeout,
            cancel,
        )

    # -- containers ------------------------------------------------------------

    def instances(self, service: str) -> list[Instance]:
        pods = [
            p
            for p in service_pods(self._rest, self._namespace, self.project.name, service)
            if is_ready(p)
        ]
        with self._lock:
            for p in pods:
                self._supervised[p["metadata"]["name"]] = (
                    p["metadata"].get("annotations") or {}
                ).get(ANNOTATION) == "1"
        return [
            instance(service, p) for p in sorted(pods, key=lambda p: str(p["metadata"]["name"]))
        ]

    def open_stream(self, instance: Instance, argv: Sequence[str]) -> Transport:
        namespace, pod, container = split_id(instance)
        return KubeTransport(
            self._rest,
            namespace,
            pod,
            container,
            argv,
            before_send=lambda: self._marks.mark(namespace, pod),
        )

    def exec(
        self, instance: Instance, argv: Sequence[str], timeout: float = 30.0
    ) -> tuple[int, bytes]:
        namespace, pod, container = split_id(instance)
        return kube_exec(self._rest, namespace, pod, container, argv, timeout)

    def restart_process(self, instance: Instance) -> None:
        namespace, pod, container = split_id(instance)
        with self._lock:
            supervised = self._supervised.get(pod, False)
        if not supervised:
            # no supervisor to restart the process in place: a new pod does it (and gets a replay)
            self._applier.delete(Ref(self._kinds.of("v1", "Pod"), namespace, pod, instance.service))
            return
        code, out = kube_exec(
            self._rest, namespace, pod, container, supervisor.restart_argv(), timeout=60
        )
        if code != 0:
            raise SyncError(
                f"restarting the process in pod {pod} failed (exit {code}): "
                f"{out.decode(errors='replace').strip()[-300:]}"
            )

    # -- background --------------------------------------------------------------

    def watch_instances(self, on_change: Callable[[str], None], stop: threading.Event) -> None:
        def changed(old: Obj | None, new: Obj | None) -> None:
            service = service_of(new or old or {"metadata": {}})
            if service is not None and _state(old) != _state(new):
                on_change(service)

        self._stops.append(stop)
        self._pods.subscribe(changed, stop)

    def watch_crashes(self, emit: Emit, stop: threading.Event) -> None:
        def changed(old: Obj | None, new: Obj | None) -> None:
            service = service_of(new or {"metadata": {}})
            if old is None or new is None or service is None:
                return
            before = {cs.get("name"): int(cs.get("restartCount", 0)) for cs in _statuses(old)}
            statuses = _statuses(new)
            for cs in statuses:
                count = int(cs.get("restartCount", 0))
                if count <= before.get(cs.get("name"), count):
                    continue
                pod = str((new.get("metadata") or {}).get("name", ""))
                last = (cs.get("lastState") or {}).get("terminated") or {}
                code = last.get("exitCode")
                emit(
                    Crashed(
                        service=service,
                        container=pod if len(statuses) == 1 else f"{pod}/{cs.get('name')}",
                        exit_code=int(code) if isinstance(code, int) else None,
                        restarts=count,
                    )
                )

        self._stops.append(stop)
        self._pods.subscribe(changed, stop)

    def follow_logs(self, emit: Emit, stop: threading.Event) -> None:
        self._stops.append(stop)
        self._pods.subscribe(LogFollowers(self._rest, self._pods, emit, stop), stop)

    def forward_ports(self, emit: Emit, stop: threading.Event) -> dict[str, list[str]]:
        self._stops.append(stop)
        urls: dict[str, list[str]] = {}
        for name, svc in self.project.services.items():
            for port in svc.ports:
                try:
                    forward = PortForward(
                        self._rest,
                        self._namespace,
                        port.local,
                        port.container,
                        self._picker(name),
                        stop,
                    )
                except OSError as exc:
                    emit(
                        WarningEvent(
                            f"cannot listen on 127.0.0.1:{port.local} for port {port.container}: "
                            f"{exc}",
                            name,
                        )
                    )
                    continue
                urls.setdefault(name, []).append(forward.url)
        return urls

    def published_urls(self) -> dict[str, list[str]]:
        """Nothing answers without a port-forward devloop keeps running."""
        return {}

    # -- cleanup -------------------------------------------------------------------

    def teardown(self) -> None:
        with self._lock:
            refs = list(self._applied.values())
            self._applied.clear()
        failed = []
        for ref in reversed(refs):
            try:
                self._applier.delete(ref)
            except DeployError as exc:
                failed.append(f"{ref}: {exc}")
        try:
            self._applier.forget(refs)
        except DevloopError as exc:
            failed.append(f"the record of applied objects: {exc}")
        self.close()
        if failed:
            raise DeployError(
                "could not delete everything this session applied:\n  " + "\n  ".join(failed)
            )

    def close(self) -> None:
        """Stop the pod watch, log followers and port-forwards; what runs in the cluster stays."""
        for stop in self._stops:
            stop.set()

    def delete_all(self) -> int:
        return self._applier.delete_all()

    # -- helpers -------------------------------------------------------------------

    def _picker(self, service: str) -> Callable[[], str | None]:
        def pick() -> str | None:
            try:
                ready = self.instances(service)
            except DevloopError:
                return None
            return split_id(ready[0])[1] if ready else None

        return pick


def _violations(manifests: Sequence[Manifest]) -> list[str]:
    """What the shipped schemas reject (cached per kind, so a dev deploy pays ~ms); nothing to say
    without the optional kubernetes-validate: the server's strict field validation still
    answers."""
    try:
        from devloop.render.validate import violations
    except ImportError:
        return []
    return list(violations(manifests, unknown_kinds=False))


def _warm_up() -> None:
    from kubernetes.client import CoreV1Api

    del CoreV1Api


def _statuses(pod: Obj) -> list[Obj]:
    return list((pod.get("status") or {}).get("containerStatuses") or [])


def _state(pod: Obj | None) -> tuple[bool, int] | None:
    """What the session cares about: a pod that exists, is ready, and how often its containers
    restarted."""
    if pod is None:
        return None
    return (is_ready(pod), restarts(pod))
