"""Image tags from build inputs, the .dockerignore walk, and the pure parts of building (no
Docker)."""

from __future__ import annotations

import os
import textwrap
import threading
from pathlib import Path

import docker.utils.build
import pytest

from devloop import config
from devloop.build import digest
from devloop.build.builder import BuiltImage, build_args, schedule
from devloop.build.output import BuildLog
from devloop.clients.kubeconfig import is_local
from devloop.clients.registry import short_reason, split_ref
from devloop.files.dockerignore import ContextFilter
from devloop.model.project import Project
from devloop.runtime.kubernetes.images import load_command

YAML = """
name: tags
target: docker
services:
  base:
    image: t/base
    context: base
  web:
    image: t/web
    context: web
    requires: [base]
    build_args: {MODE: dev}
"""


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    write(
        tmp_path,
        {
            "devloop.yaml": YAML,
            "base/Dockerfile": "FROM devloop/busybox\n",
            "web/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY . /app\n",
            "web/.dockerignore": "*.log\ntmp/\nDockerfile\n",
            "web/app/main.py": "print('hi')\n",
            "web/debug.log": "noise\n",
            "web/tmp/scratch.txt": "scratch\n",
        },
    )
    return tmp_path


def load(root: Path) -> Project:
    return config.load(root, ())


def refs(root: Path) -> dict[str, str]:
    return digest.image_refs(load(root), ["web"])


def test_tags_are_stable_and_name_the_repository(project_dir: Path) -> None:
    first = refs(project_dir)
    assert first == refs(project_dir)
    assert (
        first["web"].startswith("t/web:") and len(first["web"].split(":")[1]) == digest.TAG_LENGTH
    )
    assert list(first) == ["base", "web"]  # requires first


@pytest.mark.parametrize(
    "rel", ["web/debug.log", "web/tmp/scratch.txt", "web/tmp/new.txt", "web/other.log"]
)
def test_a_file_dockerignore_excludes_never_changes_the_tag(project_dir: Path, rel: str) -> None:
    before = refs(project_dir)
    (project_dir / rel).write_text("edited\n")
    assert refs(project_dir) == before


@pytest.mark.parametrize(
    "change",
    [
        ("web/app/main.py", "print('bye')\n"),  # a context file
        ("web/app/new.py", ""),  # a new file
        (
            "web/Dockerfile",
            "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY . /srv\n",
        ),  # excluded by .dockerignore, still counts
        ("web/.dockerignore", "*.log\ntmp/\n"),  # .dockerignore itself
    ],
)
def test_a_build_input_changes_the_tag(project_dir: Path, change: tuple[str, str]) -> None:
    before = refs(project_dir)
    (project_dir / change[0]).write_text(change[1])
    after = refs(project_dir)
    assert after["web"] != before["web"]
    assert after["base"] == before["base"]


def test_build_args_target_and_exec_bit_change_the_tag(project_dir: Path) -> None:
    before = refs(project_dir)["web"]
    yaml = project_dir / "devloop.yaml"
    yaml.write_text(YAML.replace("MODE: dev", "MODE: prod"))
    assert refs(project_dir)["web"] != before
    yaml.write_text(YAML.replace("requires: [base]", "requires: [base]\n    target: final"))
    assert refs(project_dir)["web"] != before
    yaml.write_text(YAML)
    assert refs(project_dir)["web"] == before
    os.chmod(project_dir / "web/app/main.py", 0o755)
    assert refs(project_dir)["web"] != before


def test_a_required_image_change_cascades_to_the_dependent(project_dir: Path) -> None:
    before = refs(project_dir)
    (project_dir / "base/Dockerfile").write_text("FROM devloop/busybox\nRUN true\n")
    after = refs(project_dir)
    assert after["base"] != before["base"]
    assert after["web"] != before["web"]


def test_the_stat_cache_never_hides_an_edit(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # trust every file at once, so the cache is used for files written a moment ago
    monkeypatch.setattr(digest, "_SETTLE_NS", -1)
    cache = digest.HashCache()
    svc = load(project_dir).services["web"]
    cold = digest.context_digest(svc, digest.HashCache())
    assert digest.context_digest(svc, cache) == cold
    assert digest.context_digest(svc, cache) == cold  # warm: same answer
    main = project_dir / "web/app/main.py"
    st = main.stat()
    main.write_text("print('yo')\n")  # same size
    os.utime(main, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: only ctime tells
    assert digest.context_digest(svc, cache) != cold
    assert digest.context_digest(svc, cache) == digest.context_digest(svc, digest.HashCache())


def test_recently_modified_files_are_not_cached(project_dir: Path) -> None:
    cache = digest.HashCache()
    digest.context_digest(load(project_dir).services["web"], cache)
    assert cache._entries == {}  # everything was written just now


def test_the_walk_agrees_with_the_docker_sdk(tmp_path: Path) -> None:
    patterns = [
        "*.log",
        "tmp/",
        "!tmp/keep.txt",
        "**/secret*",
        "docs",
        "Dockerfile",
        ".dockerignore",
        "vendor/*/x",
    ]
    write(
        tmp_path,
        {
            ".dockerignore": "\n".join(["# comment", "", *patterns]) + "\n",
            "Dockerfile": "FROM scratch\n",
            "a.log": "",
            "a.txt": "",
            "tmp/keep.txt": "",
            "tmp/drop.txt": "",
            "src/secret.key": "",
            "src/deep/secret2": "",
            "src/ok.py": "",
            "docs/index.md": "",
            "vendor/p/x": "",
            "vendor/p/y": "",
        },
    )
    (tmp_path / "empty").mkdir()
    os.symlink("src", tmp_path / "link")
    ours = set(ContextFilter(tmp_path, tmp_path / "Dockerfile").files())
    sdk = docker.utils.build.exclude_paths(str(tmp_path), list(patterns), dockerfile="Dockerfile")
    assert ours == sdk
    assert {"Dockerfile", ".dockerignore", "tmp/keep.txt", "link", "empty"} <= ours
    assert not {"a.log", "tmp/drop.txt", "src/secret.key", "docs/index.md", "vendor/p/x"} & ours


def test_required_images_become_build_args(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "devloop.yaml": """
            name: args
            target: docker
            services:
              my-base: {image: t/b, context: b}
              app: {image: t/a, context: a, requires: [my-base], build_args: {X: "1"}}
        """,
            "a/Dockerfile": "FROM scratch\n",
            "b/Dockerfile": "FROM scratch\n",
        },
    )
    project = load(tmp_path)
    r = digest.image_refs(project)
    assert build_args(project.services["app"], r) == {"X": "1", "MY_BASE_IMAGE": r["my-base"]}


@pytest.mark.parametrize(
    ("ref", "parts"),
    [
        ("127.0.0.1:5000/shop/web:abc", ("127.0.0.1:5000", "shop/web", "abc")),
        ("localhost/web:1", ("localhost", "web", "1")),
        ("shop/web:abc", ("docker.io", "shop/web", "abc")),
        ("busybox", ("docker.io", "library/busybox", "latest")),
    ],
)
def test_split_ref(ref: str, parts: tuple[str, str, str]) -> None:
    assert split_ref(ref) == parts


def test_short_reason() -> None:
    daemon = 'Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused'
    assert short_reason(daemon) == "connection refused"
    assert (
        short_reason("unauthorized: authentication required")
        == "unauthorized: authentication required"
    )


@pytest.mark.parametrize(
    ("context", "argv"),
    [
        ("kind-dev", ["kind", "load", "docker-image", "--name", "dev", "r:1"]),
        ("k3d-shop", ["k3d", "image", "import", "-c", "shop", "r:1"]),
        ("minikube", ["minikube", "image", "load", "r:1"]),
        ("docker-desktop", None),
        ("gke_prod", None),
    ],
)
def test_load_command(context: str, argv: list[str] | None) -> None:
    assert load_command(context, "r:1") == argv
    assert is_local(context) is (context != "gke_prod")


def test_build_log_names_the_failing_step_and_its_last_lines() -> None:
    seen: list[str] = []
    log = BuildLog(seen.append)
    log.feed(
        "Step 1/2 : FROM x\n ---> abc\nStep 2/2 : RUN make\n ---> Running in 1\n\x1b[91mcc: err"
    )
    log.feed("or\n\x1b[0m" + "".join(f"line {i}\n" for i in range(15)))
    message = log.failure("build of web failed", "The command returned a non-zero code: 2")
    assert message.startswith(
        "build of web failed at Step 2/2 : RUN make: The command returned a non-zero code: 2"
    )
    assert "line 14" in message and "line 4" not in message  # the last 10 lines
    assert "cc: error" in seen and "Step 1/2 : FROM x" in seen


def test_build_log_understands_buildkit() -> None:
    log = BuildLog(lambda line: None)
    log.feed("#5 [internal] load metadata\n#7 [build 2/3] RUN exit 3\n#7 0.2 boom\n")
    assert log.failure("x", "exit code: 3").startswith(
        "x at [build 2/3] RUN exit 3: exit code: 3\n"
    )


def _image(name: str) -> BuiltImage:
    return BuiltImage(name, f"{name}:t", None, skipped=False, pushed=False)


def test_schedule_respects_requires_and_runs_independent_work_together() -> None:
    deps = {"base": (), "a": ("base",), "b": ("base",), "top": ("a", "b")}
    started: list[str] = []
    both = threading.Barrier(2, timeout=10)

    def work(name: str) -> BuiltImage:
        started.append(name)
        if name in ("a", "b"):
            both.wait()  # deadlocks (and times out) unless a and b run at the same time
        return _image(name)

    done = schedule(list(deps), deps, work, parallel=2)
    assert set(done) == set(deps)
    assert started[0] == "base" and started[-1] == "top"


def test_schedule_stops_at_the_first_failure() -> None:
    deps = {"base": (), "web": ("base",)}
    ran: list[str] = []

    def work(name: str) -> BuiltImage:
        ran.append(name)
        raise RuntimeError(f"{name} broke")

    with pytest.raises(RuntimeError, match="base broke"):
        schedule(list(deps), deps, work, parallel=2)
    assert ran == ["base"]
