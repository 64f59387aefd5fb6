"""devloop as users install it: the wheel's contents, and a wheel in a fresh venv running the
quickstart (`pip wheel .`, install, `render`, `init --manifests`, `dev`)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import devloop
from tests.conftest import IN_CI
from tests.devproc import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_ci_tests_the_installed_package_not_the_checkout() -> None:
    # .ci/run installs the wheel into a fresh venv and runs the suite with it; an import that
    # resolved to the checkout would hide a file the wheel lacks.
    if not IN_CI:
        pytest.skip("only CI runs against the installed wheel (make dev installs editable)")
    # (the venv itself may live in the checkout, e.g. .venv-wheel: only the sources count)
    assert not Path(devloop.__file__).resolve().is_relative_to(ROOT / "devloop"), devloop.__file__


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (whl,) = out.glob("devloop-*.whl")
    return whl


@pytest.mark.slow
def test_the_wheel_holds_every_module_the_archetypes_and_the_agent(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "devloop").rglob("*.py")}
    assert sources - names == set()  # every sub-package of devloop/, every module
    archetypes = {f"devloop/templates/{p.name}" for p in (ROOT / "templates").glob("*.j2")}
    assert archetypes >= {"devloop/templates/web.yaml.j2", "devloop/templates/worker.yaml.j2"}
    assert archetypes - names == set()
    assert {"devloop/sync/agent.sh", "devloop/py.typed"} - names == set()
    # the dashboard's page and assets: served from the package, no Node at run time
    assets = {f"devloop/ui/static/{n}" for n in ("index.html", "app.js", "app.css")}
    assert assets - names == set()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its runtime dependencies only (no extras)."""
    env = tmp_path_factory.mktemp("venv") / "v"
    venv.create(env, with_pip=True)
    done = subprocess.run(
        [env / "bin" / "python", "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    return env / "bin" / "devloop"


@pytest.fixture
def quickstart(tmp_path: Path) -> Iterator[Path]:
    """The repository's quickstart, copied, under a project name of its own and a free port."""
    root = tmp_path / "quickstart"
    shutil.copytree(ROOT / "samples", root / "samples")
    config = yaml.safe_load((ROOT / "devloop.yaml").read_text())
    config["name"] = f"issue11-install-{uuid.uuid4().hex[:6]}"
    config["services"]["hello"]["ports"] = [f"{free_port()}:8080"]
    (root / "devloop.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    yield root


def run(devloop_bin: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(devloop_bin), "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "KUBECONFIG": str(root / "no-kubeconfig")},
    )


@pytest.mark.slow
def test_render_and_init_from_the_installed_wheel(installed: Path, quickstart: Path) -> None:
    rendered = run(installed, quickstart, "render")
    assert rendered.returncode == 0, rendered.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(rendered.stdout) if d]
    assert "Deployment" in kinds and "Service" in kinds  # the web archetype, from the wheel

    # the validate extra is not installed: what to install, exit 2
    validate = run(installed, quickstart, "render", "--validate")
    assert validate.returncode == 2, validate.stderr
    assert "pip install 'devloop[validate]'" in validate.stderr

    app = quickstart / "samples" / "hello"
    init = run(installed, app, "init", "--manifests")
    assert init.returncode == 0, init.stderr
    written = (app / "manifests" / "hello.yaml.j2").read_text()
    assert written == (ROOT / "templates" / "web.yaml.j2").read_text()


@pytest.mark.slow
@pytest.mark.docker
def test_dev_of_the_quickstart_from_the_installed_wheel(
    installed: Path, quickstart: Path, base_image: str
) -> None:
    env = {**os.environ, "KUBECONFIG": str(quickstart / "no-kubeconfig")}
    cmd = [str(installed), "-C", str(quickstart), "--output", "json", "dev", "hello"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    events: list[dict[str, object]] = []
    try:
        assert proc.stdout
        for line in proc.stdout:
            if line.startswith("{"):
                events.append(json.loads(line))
                if events[-1].get("event") in ("ready", "error"):
                    break
        assert events and events[-1]["event"] == "ready", events
        assert events[-1]["service"] == "hello"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, 130), err
        assert "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        run(installed, quickstart, "delete")
