"""One worker thread per pod: sandbox, containers, restarts with back-off, probes, status."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import docker.errors

from tests.kubeapi import containers, meta, podstatus, probes, volumes
from tests.kubeapi.dockerops import explain
from tests.kubeapi.meta import ApiError, Obj
from tests.kubeapi.podstatus import Run
from tests.kubeapi.resources import PODS, SERVICES
from tests.kubeapi.services import dns_names, endpoints_alias
from tests.kubeapi.settings import go_duration

if TYPE_CHECKING:
    from tests.kubeapi.kubelet import Kubelet

log = logging.getLogger(__name__)
TICK = 1.0


class PodWorker(threading.Thread):
    """Keeps one pod's containers as its spec says and reports what they do."""

    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        md = pod["metadata"]
        super().__init__(name=f"pod {md['namespace']}/{md['name']}", daemon=True)
        self.kubelet = kubelet
        self.docker = kubelet.docker
        self.store = kubelet.store
        self.namespace, self.pod_name, self.uid = md["namespace"], md["name"], md["uid"]
        self.runs: dict[str, Run] = {}
        self.pause: str | None = None
        self.pod_ip: str | None = None
        self.host_ip: str | None = None
        self.aliases: list[str] = []
        self._wake = threading.Event()
        self.finished = threading.Event()
        self.volumes: dict[str, Path] | None = None
        self._volume_root: Path | None = None
        self._mount_error = ""

    def wake(self) -> None:
        self._wake.set()

    def container_died(self, container_id: str) -> None:
        for run in self.runs.values():
            # Only a container that was seen running can exit; a failed start is handled inline.
            if run.current == container_id and run.running:
                run.exited = True
        self.wake()

    def run(self) -> None:
        try:
            self._loop()
        finally:
            self.finished.set()

    def _loop(self) -> None:
        while not self.kubelet.stopping.is_set():
            pod = self.store.find(PODS, self.namespace, self.pod_name)
            if pod is None or pod["metadata"]["uid"] != self.uid:
                self._remove_containers()
                return
            if "deletionTimestamp" in pod["metadata"]:
                self._terminate(pod)
                return
            try:
                wait = self._sync(pod)
            except Exception:
                log.exception("syncing pod %s/%s", self.namespace, self.pod_name)
                wait = TICK
            self._wake.wait(max(0.01, wait))
            self._wake.clear()

    # -- scheduling and the sandbox -------------------------------------------------------

    def _schedule(self, pod: Obj) -> bool:
        labels = self.kubelet.settings.labels()
        wanted = pod["spec"].get("nodeSelector") or {}
        if any(labels.get(k) != v for k, v in wanted.items()):
            message = (
                "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
                "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
            )
            self._write_status(podstatus.unschedulable(pod, message))
            self.kubelet.recorder.record(
                pod, "Warning", "FailedScheduling", message, "default-scheduler"
            )
            return False
        node = self.kubelet.settings.node_name

        def bind(obj: Obj) -> None:
            obj["spec"]["nodeName"] = node

        self.store.mutate(PODS, self.namespace, self.pod_name, bind)
        self.kubelet.recorder.record(
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {self.namespace}/{self.pod_name} to {node}",
            "default-scheduler",
        )
        return True

    def _service_aliases(self, pod: Obj) -> list[str]:
        labels = pod["metadata"].get("labels") or {}
        names = []
        for svc in self.store.list(SERVICES, self.namespace):
            selector = svc["spec"].get("selector") or {}
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                name = svc["metadata"]["name"]
                proxied = self.kubelet.services is not None and self.kubelet.services.enabled
                if proxied:
                    names.append(endpoints_alias(name))
                else:
                    names += dns_names(name, self.namespace)
        return sorted(names)

    def _refresh_ip(self, network: str) -> None:
        assert self.pause is not None
        info = self.docker.api.inspect_container(self.pause)["NetworkSettings"]["Networks"][network]
        self.pod_ip, self.host_ip = info["IPAddress"] or None, info["Gateway"] or None

    def _ensure_sandbox(self, pod: Obj) -> bool:
        network = self.docker.network(self.namespace)
        aliases = self._service_aliases(pod)
        if self.pause is None:
            try:
                self.pause = containers.create_pause(
                    self.docker, pod, self.kubelet.settings.pause_image, network, aliases
                )
                self.docker.api.start(self.pause)
            except docker.errors.APIError as exc:
                self.kubelet.recorder.record(
                    pod,
                    "Warning",
                    "FailedCreatePodSandBox",
                    f"Failed to create pod sandbox: {explain(exc)}",
                    "kubelet",
                )
                self.pause = None
                return False
            self.aliases = aliases
            self._refresh_ip(network)
        elif aliases != self.aliases:
            # Docker cannot change the aliases of a live endpoint: reconnect the sandbox.
            self.docker.api.disconnect_container_from_network(self.pause, network)
            self.docker.api.connect_container_to_network(self.pause, network, aliases=aliases)
            self.aliases = aliases
            self._refresh_ip(network)
        return True

    # -- containers -----------------------------------------------------------------------

    def _sync(self, pod: Obj) -> float:
        if not pod["spec"].get("nodeName"):
            if not self._schedule(pod):
                return 5.0
            pod = self.store.get(PODS, self.namespace, self.pod_name)
        if not self._ensure_sandbox(pod):
            return 2.0
        if self.volumes is None and not self._mount(pod):
            for c in pod["spec"]["containers"]:
                self.runs.setdefault(c["name"], Run(spec=c))
            self._write_status(
                podstatus.compute(
                    pod,
                    [self.runs[c["name"]] for c in pod["spec"]["containers"]],
                    self.pod_ip,
                    self.host_ip,
                    self.pause is not None,
                )
            )
            return 2.0
        inits = pod["spec"].get("initContainers") or []
        for c in inits:
            run = self.runs.setdefault(c["name"], Run(spec=c, init=True))
            if run.succeeded:
                continue
            if not run.done:
                self._sync_container(pod, run, c)
            if not run.succeeded:
                break
        if all(self.runs[c["name"]].succeeded for c in inits):
            for c in pod["spec"]["containers"]:
                run = self.runs.setdefault(c["name"], Run(spec=c))
                self._sync_container(pod, run, c)
        for c in pod["spec"]["containers"]:
            self.runs.setdefault(c["name"], Run(spec=c))
        self._probe(pod)
        self._write_status(
            podstatus.compute(
                pod,
                [self.runs[c["name"]] for c in pod["spec"]["containers"]],
                self.pod_ip,
                self.host_ip,
                self.pause is not None,
                [self.runs[c["name"]] for c in inits if c["name"] in self.runs],
            )
        )
        return self._next_wait()

    def _mount(self, pod: Obj) -> bool:
        if self._volume_root is None:
            self._volume_root = Path(tempfile.mkdtemp(prefix=f"kubeapi-{self.docker.server_id}-"))
        try:
            self.volumes = volumes.prepare(self.store, self._volume_root, pod)
        except volumes.MountError as exc:
            if str(exc) != self._mount_error:
                self._mount_error = str(exc)
                self._event(pod, "Warning", "FailedMount", str(exc))
            return False
        return True

    def _next_wait(self) -> float:
        now = time.monotonic()
        due = [now + TICK]
        for run in self.runs.values():
            if run.backoff_until > now:
                due.append(run.backoff_until)
            for t in (run.pull.backoff_until, run.pull.error_until):
                if t > now:
                    due.append(t)
            for prober in (run.readiness, run.liveness, run.startup):
                if prober is not None and run.running:
                    due.append(prober.next_due)
        return min(due) - now

    def _sync_container(self, pod: Obj, run: Run, c: Obj) -> None:
        if run.running and c["image"] != run.spec["image"]:
            self._event(
                pod,
                "Normal",
                "Killing",
                f"Container {c['name']} definition changed, will be restarted",
            )
            run.crashes = 0  # a spec change restarts at once, without back-off
            self._kill(run)
        run.spec = c
        if run.exited:
            self._handle_exit(pod, run)
        if run.running or run.done or time.monotonic() < run.backoff_until:
            return
        if not self.kubelet.images.ensure(pod, run, self.wake):
            return
        self._start(pod, run)

    def _start(self, pod: Obj, run: Run) -> None:
        assert self.pause is not None
        try:
            cid = containers.create(
                self.docker, self.store, pod, run.spec, self.pause, run.attempt, self.volumes
            )
        except containers.ConfigError as exc:
            run.waiting = ("CreateContainerConfigError", str(exc))
            self._event(pod, "Warning", "Failed", f"Error: {exc}")
            return
        except docker.errors.APIError as exc:
            run.waiting = ("CreateContainerError", explain(exc))
            self._event(pod, "Warning", "Failed", f"Error: {explain(exc)}")
            return
        self.kubelet.register(cid, self)
        if run.previous:
            self.kubelet.unregister(run.previous)
            self.docker.remove_container(run.previous)
        run.previous, run.current = run.current, cid
        run.restart_count, run.attempt = run.attempt, run.attempt + 1
        self._event(pod, "Normal", "Created", f"Created container {run.spec['name']}")
        run.exited = False
        try:
            self.docker.api.start(cid)
        except docker.errors.APIError as exc:
            self._start_failed(pod, run, cid, explain(exc))
            return
        run.running = True  # before inspecting, so that a "die" event from now on counts
        self._running(pod, run, cid)

    def _running(self, pod: Obj, run: Run, cid: str) -> None:
        state = self.docker.api.inspect_container(cid)["State"]
        run.terminated = None
        if not state.get("Running"):
            run.exited = True
        run.started_at = containers._stamp(state.get("StartedAt")) or meta.now()
        run.ready = False
        now = time.monotonic()
        spec = run.spec
        run.readiness = (
            probes.Prober(spec["readinessProbe"], now, False)
            if spec.get("readinessProbe")
            else None
        )
        run.liveness = (
            probes.Prober(spec["livenessProbe"], now, True) if spec.get("livenessProbe") else None
        )
        run.startup = (
            probes.Prober(spec["startupProbe"], now, False) if spec.get("startupProbe") else None
        )
        self._event(pod, "Normal", "Started", f"Started container {spec['name']}")

    def _start_failed(self, pod: Obj, run: Run, cid: str, message: str) -> None:
        run.running = False
        run.exited = False
        self._event(pod, "Warning", "Failed", f"Error: {message}")
        term = {
            "exitCode": 128,
            "reason": "StartError",
            "message": message,
            "startedAt": "1970-01-01T00:00:00Z",
            "finishedAt": meta.now(),
            "containerID": f"docker://{cid}",
        }
        self._after_exit(pod, run, term)

    def _handle_exit(self, pod: Obj, run: Run) -> None:
        assert run.current is not None
        run.exited = run.running = run.ready = False
        self._after_exit(pod, run, containers.termination(self.docker, run.current, run.spec))

    def _after_exit(self, pod: Obj, run: Run, term: Obj) -> None:
        policy = pod["spec"].get("restartPolicy", "Always")
        if run.init and policy == "Always":
            policy = "OnFailure"  # an init container that succeeded is done
        if policy == "Never" or (policy == "OnFailure" and term["exitCode"] == 0):
            run.terminated, run.done = term, True
            return
        settings = self.kubelet.settings
        delay = 0.0
        if run.crashes:
            delay = min(settings.crash_backoff * 2 ** (run.crashes - 1), settings.crash_backoff_max)
        run.crashes += 1
        run.last_terminated = term
        run.backoff_until = time.monotonic() + delay
        if delay:
            name = run.spec["name"]
            pod_ref = f"{self.pod_name}_{self.namespace}({self.uid})"
            run.waiting = (
                "CrashLoopBackOff",
                f"back-off {go_duration(delay)} restarting failed container={name} pod={pod_ref}",
            )
            self._event(
                pod,
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {name} in pod {pod_ref}",
            )

    def _kill(self, run: Run) -> None:
        if run.current:
            with contextlib.suppress(docker.errors.APIError):  # it may have exited meanwhile
                self.docker.api.kill(run.current)

    # -- probes ---------------------------------------------------------------------------

    def _probe(self, pod: Obj) -> None:
        now = time.monotonic()
        for run in self.runs.values():
            if run.init or not run.running or run.exited or not self.pod_ip or run.current is None:
                continue
            if run.startup and not run.startup.result and run.startup.due(now):
                self._attempt(pod, run, run.startup, "Startup")
            if not run.started:
                continue
            if run.readiness is None:
                run.ready = True
            elif run.readiness.due(now):
                self._attempt(pod, run, run.readiness, "Readiness")
                run.ready = run.readiness.result
            if run.liveness and run.liveness.due(now):
                self._attempt(pod, run, run.liveness, "Liveness")

    def _attempt(self, pod: Obj, run: Run, prober: probes.Prober, kind: str) -> None:
        assert self.pod_ip is not None and run.current is not None
        ok, message = probes.run(self.docker, self.pod_ip, run.current, run.spec, prober.spec)
        flipped = prober.record(ok, message)
        if not ok:
            self._event(pod, "Warning", "Unhealthy", f"{kind} probe failed: {message}")
        failed_hard = flipped and not prober.result and kind in ("Liveness", "Startup")
        if (
            kind == "Startup"
            and not ok
            and prober.failures >= int(prober.spec.get("failureThreshold", 3))
        ):
            failed_hard = True
        if failed_hard:
            self._event(
                pod,
                "Normal",
                "Killing",
                f"Container {run.spec['name']} failed {kind.lower()} probe, will be restarted",
            )
            self._kill(run)

    # -- status, deletion -----------------------------------------------------------------

    def _write_status(self, status: Obj) -> None:
        def put(obj: Obj) -> None:
            if obj["metadata"]["uid"] == self.uid:
                obj["status"] = status

        with contextlib.suppress(ApiError):  # deleted meanwhile: the loop notices next time round
            self.store.mutate(PODS, self.namespace, self.pod_name, put)

    def _event(self, pod: Obj, type_: str, reason: str, message: str) -> None:
        self.kubelet.recorder.record(pod, type_, reason, message, "kubelet")

    def _terminate(self, pod: Obj) -> None:
        grace = min(
            float(pod["metadata"].get("deletionGracePeriodSeconds") or 0),
            self.kubelet.settings.max_grace,
        )
        stoppers = []
        for run in self.runs.values():
            if run.running and run.current:
                self._event(pod, "Normal", "Killing", f"Stopping container {run.spec['name']}")
                t = threading.Thread(
                    target=self._stop_container, args=(run.current, grace), daemon=True
                )
                t.start()
                stoppers.append(t)
        for t in stoppers:
            t.join()
        self._remove_containers()
        self.store.remove(PODS, self.namespace, self.pod_name, self.uid)

    def _stop_container(self, cid: str, grace: float) -> None:
        with contextlib.suppress(docker.errors.APIError):
            self.docker.api.stop(cid, timeout=int(grace))

    def _remove_containers(self) -> None:
        for run in self.runs.values():
            for cid in (run.current, run.previous):
                if cid:
                    self.kubelet.unregister(cid)
                    self.docker.remove_container(cid)
        if self.pause:
            self.docker.remove_container(self.pause)
            self.pause = None
        if self._volume_root is not None:
            shutil.rmtree(self._volume_root, ignore_errors=True)
            self._volume_root = None
