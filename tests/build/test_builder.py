"""`devloop build` and the Builder against the real Docker Engine and the registry on
127.0.0.1:5000."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from devloop import config
from devloop.build.builder import Builder
from devloop.errors import BuildError
from devloop.model.events import Event

pytestmark = pytest.mark.docker

REGISTRY = "127.0.0.1:5000"
BASE = "FROM devloop/busybox\nRUN echo base > /base.txt\n"
WEB = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG MODE\nCOPY . /app\nRUN echo $MODE > /mode\n"


class Images:
    """A unique repository prefix for one test; removes its images (and registry manifests)
    afterwards."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.prefix = f"devloop-test-build-{uuid.uuid4().hex[:8]}"

    def yaml(self, registry: str | None = None, extra: str = "", web: str = "") -> str:
        reg = f"registry: {registry}\n" if registry else ""
        return (
            f"name: {self.prefix}\ntarget: docker\n{reg}{extra}services:\n"
            f"  base: {{image: {self.prefix}/base, context: base}}\n"
            f"  web:\n    image: {self.prefix}/web\n    context: web\n    requires: [base]\n"
            f"    build_args: {{MODE: dev}}\n{web}"
        )

    def cleanup(self) -> None:
        # raw listing (no inspect per image): other engineers' tests remove images concurrently
        pending = [
            i["Id"]
            for i in self.client.api.images()
            if any(
                self.prefix in n
                for n in [*(i.get("RepoTags") or []), *(i.get("RepoDigests") or [])]
            )
        ]
        for _ in range(3):  # an image with children only goes once they are gone
            left = []
            for image_id in pending:
                try:
                    self.client.api.remove_image(image_id, force=True)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError:
                    left.append(image_id)
            pending = left
        for service in ("base", "web", "one", "two"):
            _delete_repo(f"{self.prefix}/{service}")


def _delete_repo(repo: str) -> None:
    tags = (
        requests.get(f"http://{REGISTRY}/v2/{repo}/tags/list", timeout=10).json().get("tags") or []
    )
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    for tag in tags:
        head = requests.head(
            f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", headers=accept, timeout=10
        )
        digest = head.headers.get("Docker-Content-Digest")
        if digest:
            requests.delete(f"http://{REGISTRY}/v2/{repo}/manifests/{digest}", timeout=10)


@pytest.fixture
def images(docker_client: docker.DockerClient, base_image: str) -> Iterator[Images]:
    imgs = Images(docker_client)
    yield imgs
    imgs.cleanup()


@pytest.fixture
def shop(devloop_project: Callable[..., Any], images: Images) -> Any:
    """base ← web, with a .dockerignore; local daemon only."""
    return devloop_project(
        {
            "devloop.yaml": images.yaml(),
            "base/Dockerfile": BASE,
            "web/Dockerfile": WEB,
            "web/.dockerignore": "*.log\n",
            "web/app/main.py": "print('hi')\n",
            "web/debug.log": "noise\n",
        }
    )


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def kinds(out: str, service: str) -> list[str]:
    return [
        e["event"]
        for e in events(out)
        if e.get("service") == service and e["event"] not in ("build_step", "build_progress")
    ]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def direct_builder(
    path: Path, client: docker.DockerClient, **kw: Any
) -> tuple[Builder, list[Event]]:
    seen: list[Event] = []
    return Builder(config.load(path, ()), client, seen.append, **kw), seen


def test_second_build_is_skipped(shop: Any) -> None:
    first = shop.run("build", "--output", "json")
    assert first.code == 0, first.err
    assert kinds(first.out, "base") == ["build_started", "build_done"]
    assert kinds(first.out, "web") == ["build_started", "build_done"]
    report = events(first.out)[-1]
    assert report["event"] == "build_report" and report["services"]["web"]["skipped"] is False

    second = shop.run("build")
    assert second.code == 0, second.err
    ref = report["services"]["web"]["image"]
    assert f"build skipped: {ref} already built" in second.err
    assert f"web {ref}\n" in second.out


def test_required_image_and_build_args_reach_the_build(
    shop: Any, docker_client: docker.DockerClient
) -> None:
    builder, _ = direct_builder(shop.path, docker_client)
    built = builder.build(["web"])
    assert list(built) == ["base", "web"]
    out = docker_client.containers.run(
        built["web"].ref,
        ["cat", "/base.txt", "/mode", "/app/app/main.py"],
        remove=True,
        labels={"devloop.test": "build"},
    )
    assert out.decode() == "base\ndev\nprint('hi')\n"


def test_ignored_file_skips_and_a_required_change_cascades(
    shop: Any, docker_client: docker.DockerClient
) -> None:
    builder, seen = direct_builder(shop.path, docker_client)
    first = builder.build(["web"])
    (shop.path / "web/debug.log").write_text("more noise\n")
    builder, seen = direct_builder(shop.path, docker_client)
    again = builder.build(["web"])
    assert again["web"].ref == first["web"].ref and again["web"].skipped
    assert [e.kind for e in seen] == ["build_skipped", "build_skipped"]

    (shop.path / "base/Dockerfile").write_text(BASE + "RUN echo v2 > /v\n")
    builder, seen = direct_builder(shop.path, docker_client)
    cascade = builder.build(["web"])
    assert cascade["base"].ref != first["base"].ref and cascade["web"].ref != first["web"].ref
    assert not cascade["base"].skipped and not cascade["web"].skipped
    out = docker_client.containers.run(
        cascade["web"].ref, ["cat", "/v"], remove=True, labels={"devloop.test": "build"}
    )
    assert out == b"v2\n"


@pytest.mark.parametrize("buildkit", ["0", "auto"], ids=["classic", "buildkit-when-present"])
def test_broken_dockerfile_names_the_failing_step(
    shop: Any, buildkit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVLOOP_BUILDKIT", buildkit)
    (shop.path / "base/Dockerfile").write_text(
        "FROM devloop/busybox\nRUN echo preparing; echo 'no such thing' >&2; exit 3\nRUN true\n"
    )
    result = shop.run("build")
    assert result.code == 1
    error = result.err[result.err.index("error: ") :]
    assert error.startswith("error: build of base (")
    # classic: "Step 2/4 : RUN ..." (the count includes the label step); BuildKit: "[2/3] RUN ..."
    assert re.search(
        r"failed at (Step 2/\d : |\[2/3\] )RUN echo preparing; echo 'no such thing' >&2; exit 3: ",
        error,
    )
    assert "returned a non-zero code: 3" in error or "exit code: 3" in error
    assert "\n    preparing\n" in error and "\n    no such thing\n" in error
    assert "build_started" not in kinds(
        shop.run("build", "--output", "json").out, "web"
    )  # never started


def test_dockerfile_syntax_error(shop: Any) -> None:
    (shop.path / "web/Dockerfile").write_text("FORM devloop/busybox\n")
    result = shop.run("build", "web")
    assert result.code == 1
    assert "error: build of web (" in result.err and "unknown instruction: FORM" in result.err


def test_push_then_pull_by_digest_gives_the_same_image(
    devloop_project: Callable[..., Any],
    images: Images,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    proj = devloop_project(
        {"devloop.yaml": images.yaml(REGISTRY), "base/Dockerfile": BASE, "web/Dockerfile": WEB}
    )
    report_file = tmp_path / "report.json"
    result = proj.run("build", "--report", str(report_file))
    assert result.code == 0, result.err
    web = json.loads(report_file.read_text())["services"]["web"]
    assert web["image"].startswith(f"{REGISTRY}/{images.prefix}/web:")
    assert web["digest"].startswith("sha256:") and web["pushed"] is True
    image_id = docker_client.images.get(web["image"]).id

    docker_client.images.remove(web["image"], force=True)
    pulled = docker_client.images.pull(f"{web['image'].rsplit(':', 1)[0]}@{web['digest']}")
    assert pulled.id == image_id

    again = proj.run("build", "--output", "json")
    assert again.code == 0, again.err
    skipped = [e for e in events(again.out) if e["event"] == "build_skipped"]
    assert {e["reason"] for e in skipped} == {f"already in registry {REGISTRY}"}
    assert events(again.out)[-1]["services"]["web"]["digest"] == web["digest"]


def test_unreachable_registry_is_a_clear_error(
    devloop_project: Callable[..., Any], images: Images
) -> None:
    registry = f"127.0.0.1:{closed_port()}"
    proj = devloop_project(
        {"devloop.yaml": images.yaml(registry), "base/Dockerfile": BASE, "web/Dockerfile": WEB}
    )
    result = proj.run("build", "base")
    assert result.code == 1
    ref = f"{registry}/{images.prefix}/base:"
    assert f"error: cannot push {ref}" in result.err
    assert result.err.rstrip().endswith(f"to registry {registry}: connection refused")


def test_report_pins_digests_and_render_names_the_built_tags(
    devloop_project: Callable[..., Any], images: Images, tmp_path: Path
) -> None:
    proj = devloop_project(
        {"devloop.yaml": images.yaml(), "base/Dockerfile": BASE, "web/Dockerfile": WEB}
    )
    rendered = proj.run("render")
    assert rendered.code == 0, rendered.err
    built = proj.run("build", "--output", "json")
    refs = {name: s["image"] for name, s in events(built.out)[-1]["services"].items()}
    assert f"image: {refs['web']}\n" in rendered.out and f"image: {refs['base']}\n" in rendered.out

    pushed = devloop_project(
        {"devloop.yaml": images.yaml(REGISTRY), "base/Dockerfile": BASE, "web/Dockerfile": WEB}
    )
    report_file = tmp_path / "report.json"
    assert pushed.run("build", "--push", "--report", str(report_file)).code == 0
    web = json.loads(report_file.read_text())["services"]["web"]
    pinned = pushed.run("render", "--build-report", str(report_file), "web")
    assert pinned.code == 0, pinned.err
    assert f"image: {web['image']}@{web['digest']}\n" in pinned.out


BUILDX_LIKE = (
    'echo "push=$PUSH_IMAGE base=$BASE_IMAGE"'
    ' && docker build -q --build-arg BASE_IMAGE -t "$IMAGE" -f "$DOCKERFILE" "$CONTEXT"'
    ' && if [ "$PUSH_IMAGE" = true ]; then docker push -q "$IMAGE"; fi'
)


@pytest.mark.parametrize("registry", [None, REGISTRY])
def test_builder_command_gets_image_context_and_dockerfile(
    devloop_project: Callable[..., Any],
    images: Images,
    docker_client: docker.DockerClient,
    registry: str | None,
) -> None:
    proj = devloop_project(
        {
            "devloop.yaml": images.yaml(
                registry, web=f"    builder: {{command: '{BUILDX_LIKE}'}}\n"
            ),
            "base/Dockerfile": BASE,
            "web/Dockerfile": WEB,
        }
    )
    builder, seen = direct_builder(proj.path, docker_client)
    built = builder.build(["web"])
    lines = [getattr(e, "line", "") for e in seen if getattr(e, "service", "") == "web"]
    push = "true" if registry else "false"
    assert f"push={push} base={built['base'].ref}" in lines
    assert docker_client.images.get(built["web"].ref)
    if registry:  # the command pushed; devloop found the digest in the registry
        tag = built["web"].ref.rsplit(":", 1)[1]
        pushed = requests.head(
            f"http://{registry}/v2/{images.prefix}/web/manifests/{tag}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
            timeout=10,
        )
        assert built["web"].digest == pushed.headers["Docker-Content-Digest"]
        assert built["web"].pushed


def test_failing_builder_command_reports_its_last_lines(
    devloop_project: Callable[..., Any], images: Images
) -> None:
    proj = devloop_project(
        {
            "devloop.yaml": images.yaml(
                web="    builder: {command: 'echo compiling; echo oops >&2; exit 7'}\n"
            ),
            "base/Dockerfile": BASE,
            "web/Dockerfile": WEB,
        }
    )
    result = proj.run("build", "web")
    assert result.code == 1
    assert (
        "with `echo compiling; echo oops >&2; exit 7` failed: the command exited with code 7"
        in result.err
    )
    assert "    compiling\n    oops" in result.err


def test_builder_command_that_makes_no_image(
    devloop_project: Callable[..., Any], images: Images, docker_client: docker.DockerClient
) -> None:
    proj = devloop_project(
        {
            "devloop.yaml": images.yaml(web="    builder: {command: 'true'}\n"),
            "base/Dockerfile": BASE,
            "web/Dockerfile": WEB,
        }
    )
    builder, _ = direct_builder(proj.path, docker_client)
    with pytest.raises(
        BuildError, match=r"`true` succeeded but .*/web:\w+ is not in the local Docker engine"
    ):
        builder.build(["web"])


def test_independent_services_build_in_parallel(
    devloop_project: Callable[..., Any], images: Images, docker_client: docker.DockerClient
) -> None:
    slow = "FROM devloop/busybox\nARG N\nRUN sleep 2\n"
    proj = devloop_project(
        {
            "devloop.yaml": (
                f"name: {images.prefix}\ntarget: docker\nservices:\n"
                f"  one: {{image: {images.prefix}/one, context: ., build_args: {{N: '1'}}}}\n"
                f"  two: {{image: {images.prefix}/two, context: ., build_args: {{N: '2'}}}}\n"
            ),
            "Dockerfile": slow,
        }
    )
    builder, seen = direct_builder(proj.path, docker_client)
    builder.build()
    order = [
        (e.kind, getattr(e, "service", ""))
        for e in seen
        if e.kind in ("build_started", "build_done")
    ]
    # both started before either finished: each RUN takes 2 s, starting one takes milliseconds
    assert {order[0][0], order[1][0]} == {"build_started"}


def test_kind_context_without_the_kind_cli(
    devloop_project: Callable[..., Any], images: Images, tmp_path: Path
) -> None:
    yaml = images.yaml(extra="kubernetes: {context: kind-devloop-test}\n").replace(
        "target: docker", "target: kubernetes"
    )
    proj = devloop_project({"devloop.yaml": yaml, "base/Dockerfile": BASE, "web/Dockerfile": WEB})
    (tmp_path / "empty-bin").mkdir()
    result = proj.run("build", "base", env={"PATH": str(tmp_path / "empty-bin")})
    assert result.code == 1
    assert (
        f"cannot load {images.prefix}/base:" in result.err
        and "into the cluster of kube context kind-devloop-test: the 'kind' CLI is not on PATH"
        in result.err
    )


@pytest.mark.parametrize("host", ["unix:///nonexistent/docker.sock", "tcp://127.0.0.1:{port}"])
def test_unreachable_engine(shop: Any, host: str) -> None:
    host = host.format(port=closed_port())
    result = shop.run("build", env={"DOCKER_HOST": host})
    assert result.code == 1
    assert result.err.startswith(f"error: cannot reach the Docker engine at {host}: ")


def test_unknown_service_is_a_usage_error(shop: Any) -> None:
    result = shop.run("build", "nope")
    assert result.code == 2
    assert "unknown service(s): nope (services: base, web)" in result.err
