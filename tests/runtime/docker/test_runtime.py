"""The Docker runtime against the real engine: rendered manifests in, labelled containers out."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import pytest

from devloop import config
from devloop.errors import DeployError, RuntimeUnavailable
from devloop.model.events import Crashed, Event, Log
from devloop.model.manifest import LABEL_PART_OF as LABEL_PROJECT
from devloop.model.manifest import LABEL_SERVICE, LABEL_SESSION, Manifest
from devloop.model.project import Project
from devloop.render.templates import render
from devloop.runtime.docker.podspec import container_specs
from devloop.runtime.docker.probe import ProbeResult, run_probe
from devloop.runtime.docker.runtime import DockerRuntime

pytestmark = pytest.mark.docker
T = TypeVar("T")
PREFIX = "devloop-rt-test"

WEB_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: web-settings}
data: {GREETING: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: web-creds}
data: {TOKEN: {{ "tok3n" | b64encode }}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: {{ values.replicas | default(1) }}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: {{ image | quote }}
          # $$$$ is the shell's $$ once Kubernetes' own $(VAR) / $$ expansion is done
          command: ["sh", "-c", "echo $$$$ >>/tmp/starts; echo serving $(VERSION); echo \\"$GREETING $TOKEN $VERSION\\" >/www/env.txt; exec httpd -f -p 80 -h /www"]
          env:
            - {name: VERSION, value: {{ values.version | quote }}}
            - name: GREETING
              valueFrom: {configMapKeyRef: {name: web-settings, key: GREETING}}
            - name: TOKEN
              valueFrom: {secretKeyRef: {name: web-creds, key: TOKEN}}
          ports: [{containerPort: 80, name: http}]
          readinessProbe:
            httpGet: {path: {{ values.probe_path | default("/index.html") | quote }}, port: http}
            periodSeconds: 1
            failureThreshold: 2
"""  # noqa: E501


def _eventually(check: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as resp:
        return str(resp.read().decode())


@pytest.fixture(scope="module")
def images(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A tiny httpd image FROM devloop/busybox (tagged once per service) and a shell-less one."""
    ctx = tmp_path_factory.mktemp("image")
    (ctx / "www").mkdir()
    (ctx / "www" / "index.html").write_text("hello from web\n")
    (ctx / "Dockerfile").write_text(
        'FROM devloop/busybox:latest\nCOPY www /www\nCMD ["httpd", "-f", "-p", "80", "-h", '
        '"/www"]\n'
    )
    tag = uuid.uuid4().hex[:10]
    image, _ = docker_client.images.build(
        path=str(ctx), tag=f"{PREFIX}/web:{tag}", labels={"devloop.test": "runtime-docker"}, rm=True
    )
    image.tag(f"{PREFIX}/client", tag)
    bare = ctx / "bare"
    bare.mkdir()
    (bare / "Dockerfile").write_text(
        "FROM devloop/busybox:latest AS bb\nFROM scratch\nCOPY --from=bb /bin/busybox /busybox\n"
        'COPY --from=bb /tmp /tmp\nCMD ["/busybox", "httpd", "-f", "-p", "80", "-h", "/"]\n'
    )
    docker_client.images.build(
        path=str(bare),
        tag=f"{PREFIX}/bare:{tag}",
        labels={"devloop.test": "runtime-docker"},
        rm=True,
    )
    refs = {
        "web": f"{PREFIX}/web:{tag}",
        "client": f"{PREFIX}/client:{tag}",
        "bare": f"{PREFIX}/bare:{tag}",
    }
    yield refs
    for ref in refs.values():
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(ref, force=True)


class Env:
    """A project in a tmpdir, rendered with the test images, and the runtimes made for it."""

    def __init__(self, root: Path, client: docker.DockerClient, images: dict[str, str]) -> None:
        self.root = root
        self.client = client
        self.images = images
        self.name = "rt" + uuid.uuid4().hex[:8]
        self.port = _free_port()
        self.runtimes: list[DockerRuntime] = []

    def write(
        self, web_values: dict[str, Any] | None = None, extra: str = "", client: bool = True
    ) -> Project:
        values = {"version": "1", **(web_values or {})}
        lines = [
            f"name: {self.name}",
            "target: docker",
            "services:",
            "  web:",
            f"    image: {PREFIX}/web",
            "    manifests: [web.yaml.j2]",
            f'    ports: ["{self.port}:80"]',
            f"    values: {values!r}",
        ]
        if client:
            lines += [
                "  client:",
                f"    image: {PREFIX}/client",
                "    archetype: worker",
                '    values: {command: ["sleep", "3600"]}',
            ]
        text = "\n".join(lines) + "\n"
        (self.root / "devloop.yaml").write_text(text)
        (self.root / "web.yaml.j2").write_text(WEB_TEMPLATE)
        (self.root / "Dockerfile").write_text(
            "FROM devloop/busybox:latest\n"
        )  # never built: images are given
        return config.load(self.root)

    def manifests(self, project: Project) -> list[Manifest]:
        return render(
            project, {s: self.images.get(s, f"{PREFIX}/{s}:none") for s in project.services}
        )

    def runtime(
        self, project: Project, *, dev: bool = True, session: str | None = None
    ) -> DockerRuntime:
        rt = DockerRuntime(project, self.client, session or "s" + uuid.uuid4().hex[:8], dev=dev)
        self.runtimes.append(rt)
        return rt

    def containers(self, *labels: str, all: bool = True) -> list[Any]:
        return list(
            self.client.containers.list(
                all=all, filters={"label": [f"{LABEL_PROJECT}={self.name}", *labels]}
            )
        )

    def cleanup(self) -> None:
        for rt in self.runtimes:
            rt.close()
        for c in self.containers():
            c.remove(force=True)
        for n in self.client.networks.list(names=[f"devloop-{self.name}"]):
            n.remove()


@pytest.fixture
def env(
    tmp_path: Path, docker_client: docker.DockerClient, images: dict[str, str]
) -> Iterator[Env]:
    e = Env(tmp_path, docker_client, images)
    yield e
    e.cleanup()


def _exec(client: docker.DockerClient, cid: str, *argv: str) -> tuple[int, str]:
    code, out = client.containers.get(cid).exec_run(list(argv))
    return int(code), out.decode()


def test_deploy_runs_the_manifests_as_labelled_containers_on_one_network(env: Env) -> None:
    project = env.write()
    rt = env.runtime(project)
    rt.deploy(env.manifests(project), ["web", "client"])
    rt.wait_ready(["web", "client"], timeout=60)

    web = env.client.containers.get(f"{env.name}-web-web-0")
    labels = web.labels
    assert labels[LABEL_PROJECT] == env.name and labels[LABEL_SERVICE] == "web"
    assert labels[LABEL_SESSION] == rt._session
    network = web.attrs["NetworkSettings"]["Networks"][f"devloop-{env.name}"]
    assert "web" in network["Aliases"]
    assert env.client.networks.get(f"devloop-{env.name}").attrs["Labels"][LABEL_PROJECT] == env.name

    # the other service reaches this one by its Kubernetes Service name
    client_ctr = env.client.containers.get(f"{env.name}-client-client-0")
    code, out = _exec(env.client, client_ctr.id, "wget", "-qO-", "http://web:80/index.html")
    assert (code, out) == (0, "hello from web\n")
    # env from a literal, a ConfigMap and a Secret reached the process
    assert _exec(env.client, client_ctr.id, "wget", "-qO-", "http://web/env.txt") == (
        0,
        "hello tok3n 1\n",
    )

    # the service's port is published on 127.0.0.1
    assert _get(f"http://127.0.0.1:{env.port}/index.html") == "hello from web\n"
    assert rt.forward_ports(lambda e: None, threading.Event()) == {
        "web": [f"http://127.0.0.1:{env.port}"]
    }

    [inst] = rt.instances("web")
    assert (inst.id, inst.name, inst.image) == (web.id, f"{env.name}-web-web-0", env.images["web"])
    assert rt.exec(inst, ["cat", "/www/index.html"]) == (0, b"hello from web\n")


def test_redeploy_keeps_unchanged_containers_and_replaces_changed_ones(env: Env) -> None:
    project = env.write(client=True)
    rt = env.runtime(project)
    rt.deploy(env.manifests(project), ["web", "client"])
    before = {c.name: c.id for c in env.containers()}

    rt.deploy(env.manifests(project), ["web", "client"])
    assert {c.name: c.id for c in env.containers()} == before

    changed = env.write(web_values={"version": "2"}, client=True)
    rt.deploy(env.manifests(changed), ["web", "client"])
    after = {c.name: c.id for c in env.containers()}
    assert after.keys() == before.keys()
    assert after[f"{env.name}-web-web-0"] != before[f"{env.name}-web-web-0"]
    assert after[f"{env.name}-client-client-0"] == before[f"{env.name}-client-client-0"]
    rt.wait_ready(["web"], timeout=60)
    assert _get(f"http://127.0.0.1:{env.port}/env.txt") == "hello tok3n 2\n"

    # two replicas; then the client's workload is no longer rendered: its container goes
    scaled = env.write(web_values={"version": "2", "replicas": 2}, client=True)
    manifests = [
        m for m in env.manifests(scaled) if m.service != "client" or m.kind != "Deployment"
    ]
    rt.deploy(manifests, ["web", "client"])
    names = sorted(c.name for c in env.containers())
    assert names == [f"{env.name}-web-web-0", f"{env.name}-web-web-1"]
    rt.wait_ready(["web"], timeout=60)


def test_restart_process_restarts_in_the_same_container(env: Env) -> None:
    project = env.write(client=False)
    rt = env.runtime(project)
    rt.deploy(env.manifests(project), ["web"])
    rt.wait_ready(["web"], timeout=60)
    [inst] = rt.instances("web")

    rt.restart_process(inst)

    [again] = rt.instances("web")
    assert again.id == inst.id and again.generation == inst.generation  # same container, same start
    code, starts = _exec(env.client, inst.id, "cat", "/tmp/starts")
    pids = starts.split()
    assert code == 0 and len(pids) == 2 and pids[0] != pids[1]
    rt.wait_ready(["web"], timeout=60)
    assert _get(f"http://127.0.0.1:{env.port}/index.html") == "hello from web\n"


def test_a_container_removed_by_hand_comes_back_and_watchers_hear_of_it(env: Env) -> None:
    project = env.write(client=False)
    rt = env.runtime(project)
    rt.deploy(env.manifests(project), ["web"])
    rt.wait_ready(["web"], timeout=60)
    stop = threading.Event()
    changed: list[str] = []
    rt.watch_instances(changed.append, stop)
    [old] = rt.instances("web")

    env.client.containers.get(old.id).remove(force=True)

    new = _eventually(
        lambda: [i for i in rt.instances("web") if i.id != old.id], what="a new web container"
    )
    assert new[0].name == old.name and new[0].generation != old.generation
    _eventually(
        lambda: changed.count("web") >= 2, what="callbacks for the removal and the new start"
    )
    rt.wait_ready(["web"], timeout=60)
    stop.set()


@pytest.mark.parametrize("fault", ["kill", "stop"])
def test_a_container_stopped_by_hand_is_started_again(env: Env, fault: str) -> None:
    project = env.write(client=False)
    rt = env.runtime(project)
    rt.deploy(env.manifests(project), ["web"])
    rt.wait_ready(["web"], timeout=60)
    stop = threading.Event()
    changed: list[str] = []
    crashed: list[Event] = []
    rt.watch_instances(changed.append, stop)
    rt.watch_crashes(crashed.append, stop)
    [old] = rt.instances("web")

    container = env.client.containers.get(old.id)
    # docker kill / docker stop: the engine's restart policy leaves the container Exited
    container.kill() if fault == "kill" else container.stop(timeout=2)
    [crash] = _eventually(lambda: crashed or None, what="a crashed event")
    assert isinstance(crash, Crashed)
    assert (crash.service, crash.container, crash.restarts) == ("web", old.name, 1)
    if fault == "kill":
        assert crash.exit_code == 137

    [back] = _eventually(lambda: rt.instances("web") or None, what="web running again")
    assert back.id == old.id and back.generation != old.generation
    _eventually(lambda: changed.count("web") >= 2, what="callbacks for the stop and the start")
    rt.wait_ready(["web"], timeout=60)
    stop.set()


def test_logs_follow_every_container_and_its_replacement(env: Env) -> None:
    project = env.write(client=False)
    rt = env.runtime(project)
    rt.deploy(env.manifests(project), ["web"])
    lines: list[Event] = []
    stop = threading.Event()
    rt.follow_logs(lines.append, stop)
    name = f"{env.name}-web-web-0"
    _eventually(
        lambda: Log("web", name, "serving 1") in lines, what="the first container's log line"
    )

    rt.deploy(env.manifests(env.write(web_values={"version": "2"}, client=False)), ["web"])
    _eventually(lambda: Log("web", name, "serving 2") in lines, what="the replacement's log line")
    stop.set()


def test_a_crashing_container_fails_wait_ready_with_its_state_and_logs(env: Env) -> None:
    project = env.write(client=False)
    text = (
        (env.root / "web.yaml.j2")
        .read_text()
        .replace("exec httpd", "echo boom: config missing; exit 3; httpd")
    )
    (env.root / "web.yaml.j2").write_text(text)
    rt = env.runtime(project)
    rt.deploy(env.manifests(project), ["web"])
    with pytest.raises(DeployError) as err:
        rt.wait_ready(["web"], timeout=60)
    message = str(err.value)
    assert "service 'web' is not ready" in message
    assert "exited with code 3" in message
    assert "boom: config missing" in message


def test_a_failing_readiness_probe_is_named(env: Env) -> None:
    project = env.write(web_values={"probe_path": "/missing"}, client=False)
    rt = env.runtime(project)
    rt.deploy(env.manifests(project), ["web"])
    with pytest.raises(DeployError) as err:
        rt.wait_ready(["web"], timeout=60)
    message = str(err.value)
    assert "readiness probe httpGet http://:http/missing failing: HTTP 404" in message
    assert "serving 1" in message  # the last log lines


def test_an_http_probe_asks_from_inside_when_the_host_cannot_reach_the_container(env: Env) -> None:
    project = env.write(client=False)
    rt = env.runtime(project)
    rt.deploy(env.manifests(project), ["web"])
    rt.wait_ready(["web"], timeout=60)
    [spec] = container_specs(project, env.manifests(project), ["web"])
    [inst] = rt.instances("web")

    def run(argv: Sequence[str], timeout: float) -> tuple[int, bytes]:
        return rt.exec(inst, argv, timeout)

    probe = {"httpGet": {"path": "/index.html", "port": 80}, "timeoutSeconds": 1}
    # a name that never resolves stands for an address the host cannot route to
    assert run_probe(probe, spec, "devloop-unreachable.invalid", run) == ProbeResult(
        True, "HTTP ok (wget in the container)", True
    )
    missing = run_probe(
        {**probe, "httpGet": {"path": "/missing", "port": 80}},
        spec,
        "devloop-unreachable.invalid",
        run,
    )
    assert not missing.ok and missing.answered and "404" in missing.detail


def test_wait_ready_returns_promptly_when_cancelled(env: Env) -> None:
    project = env.write(web_values={"probe_path": "/missing"}, client=False)
    rt = env.runtime(project)
    rt.deploy(env.manifests(project), ["web"])
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    rt.wait_ready(["web"], timeout=60, cancel=cancel)
    assert time.monotonic() - started < 5


def test_an_image_without_a_shell_runs_unsupervised_and_restarts_through_docker(env: Env) -> None:
    project = env.write(client=False)
    template = (env.root / "web.yaml.j2").read_text()
    start = template.index("          # $$$$")
    end = template.index("          env:")
    (env.root / "web.yaml.j2").write_text(template[:start] + template[end:])
    images = {**env.images, "web": env.images["bare"]}
    manifests = render(project, images)
    # the bare image has no /www: probe what it serves instead
    for m in manifests:
        for pod in m.pod_templates():
            pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/busybox"
    rt = env.runtime(project)
    rt.deploy(manifests, ["web"])
    rt.wait_ready(["web"], timeout=60)
    [inst] = rt.instances("web")
    assert env.client.containers.get(inst.id).attrs["Config"]["Cmd"] == [
        "/busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/",
    ]

    rt.restart_process(inst)

    [again] = rt.instances("web")
    assert again.id == inst.id and again.generation != inst.generation


def test_teardown_leaves_no_container_or_network(env: Env) -> None:
    project = env.write()
    rt = env.runtime(project)
    rt.deploy(env.manifests(project), ["web", "client"])
    assert len(env.containers()) == 2

    rt.teardown()

    assert env.containers() == []
    assert env.client.networks.list(names=[f"devloop-{env.name}"]) == []


def test_delete_all_removes_only_this_projects_objects(
    env: Env, docker_client: docker.DockerClient
) -> None:
    project = env.write()
    env.runtime(project).deploy(env.manifests(project), ["web", "client"])
    other = docker_client.containers.create(
        env.images["client"],
        ["sleep", "60"],
        name=f"{PREFIX}-{uuid.uuid4().hex[:8]}",
        labels={
            LABEL_PROJECT: env.name + "-other",
            LABEL_SESSION: "x",
            "devloop.test": "runtime-docker",
        },
    )
    try:
        fresh = env.runtime(project, session="another")
        assert fresh.delete_all() == 3  # two containers and the network
        assert env.containers() == []
        other.reload()
        assert other.status == "created"
    finally:
        other.remove(force=True)


def test_a_missing_image_is_named(env: Env) -> None:
    project = env.write(client=False)
    manifests = render(project, {"web": f"{PREFIX}/web:not-built"})
    with pytest.raises(
        DeployError, match=f"image {PREFIX}/web:not-built is not in the local Docker engine"
    ):
        env.runtime(project).deploy(manifests, ["web"])
    assert env.containers() == []


def test_an_unreachable_engine_is_reported_at_construction(env: Env) -> None:
    project = env.write(client=False)
    # nothing listens on a port just freed; a TCP refusal closes its socket (a missing unix
    # socket leaks one in docker-py)
    client = docker.DockerClient(
        base_url=f"tcp://127.0.0.1:{_free_port()}", version="1.41", timeout=5
    )
    try:
        with pytest.raises(RuntimeUnavailable, match="cannot reach the Docker engine at"):
            DockerRuntime(project, client, "s", dev=True)
    finally:
        client.close()
