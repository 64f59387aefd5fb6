"""Images built on the local engine, into a local cluster's nodes: kind, k3d and minikube load them
with their own CLI; clusters that run on this engine (Docker Desktop, ...) see them already."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from devloop.build.deliver import OnLine
from devloop.build.output import BuildLog
from devloop.clients.kubeconfig import SAME_ENGINE, is_local
from devloop.errors import BuildError


def load_command(kube_context: str, ref: str) -> list[str] | None:
    """The CLI that puts `ref` into the local cluster `kube_context`; None when nothing is
    needed."""
    if kube_context.startswith("kind-"):
        return ["kind", "load", "docker-image", "--name", kube_context.removeprefix("kind-"), ref]
    if kube_context.startswith("k3d-"):
        return ["k3d", "image", "import", "-c", kube_context.removeprefix("k3d-"), ref]
    if kube_context == "minikube":
        return ["minikube", "image", "load", ref]
    return None


class ClusterImages:
    """The ImageTarget of a kube context: load into kind/k3d/minikube, or nothing."""

    def __init__(self, kube_context: str | None, server: str | None = None) -> None:
        self.kube_context = kube_context
        self.server = server

    def unreachable(self) -> str | None:
        """Why images that stay on this engine may not reach the cluster's nodes, or None."""
        context = self.kube_context
        if context is None or context in SAME_ENGINE or load_command(context, "x") is not None:
            return None
        if is_local(context, self.server):
            return None
        return (
            f"kube context {context} is not a local cluster and no registry is set: "
            "its nodes may not find the images (set `registry` in devloop.yaml)"
        )

    def load(self, ref: str, on_line: OnLine) -> str | None:
        """Load `ref` into the cluster when it needs it; what was done, or None."""
        argv = load_command(self.kube_context, ref) if self.kube_context else None
        if argv is None:
            return None
        what = f"cannot load {ref} into the cluster of kube context {self.kube_context}"
        if shutil.which(argv[0]) is None:
            raise BuildError(
                f"{what}: the '{argv[0]}' CLI is not on PATH "
                "(install it, or set `registry` in devloop.yaml)"
            )
        log = BuildLog(on_line)
        code = _run(argv, log, what)
        if code != 0 and argv[:3] == ["kind", "load", "docker-image"]:
            # kind#3795: `kind load docker-image` fails when Docker uses the containerd image
            # store; an archive written by `docker save` loads either way
            on_line(
                "`kind load docker-image` failed (kind#3795: Docker's containerd image store); "
                "retrying with docker save + kind load image-archive"
            )
            return self._load_archive(ref, argv[4], log, what)
        if code != 0:
            raise BuildError(log.failure(what, f"`{' '.join(argv)}` exited with code {code}"))
        return f"loaded {ref} into kube context {self.kube_context}"

    def _load_archive(self, ref: str, cluster: str, log: BuildLog, what: str) -> str:
        with tempfile.TemporaryDirectory(prefix="devloop-image-") as tmp:
            archive = Path(tmp) / "image.tar"
            save = ["docker", "save", "-o", str(archive), ref]
            if _run(save, log, what) != 0:
                raise BuildError(log.failure(what, f"`{' '.join(save)}` failed"))
            argv = ["kind", "load", "image-archive", str(archive), "--name", cluster]
            code = _run(argv, log, what)
        if code != 0:
            raise BuildError(log.failure(what, f"`{' '.join(argv)}` exited with code {code}"))
        return (
            f"loaded {ref} into kube context {self.kube_context} as an image archive "
            "(kind load docker-image failed: kind#3795)"
        )


def _run(argv: list[str], log: BuildLog, what: str) -> int:
    try:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"{what}: {' '.join(argv)}: {exc}") from None
    log.feed((proc.stdout + proc.stderr).decode(errors="replace") + "\n")
    return proc.returncode
