"""Image delivery to kind/k3d/minikube through stand-in CLIs on PATH (issue 14, item 6): they
record their arguments and do to the engine what the real ones need (read the archive)."""

from __future__ import annotations

import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from devloop import doctor
from devloop.runtime.kubernetes.images import ClusterImages

pytestmark = [pytest.mark.docker]

# Like kind with Docker's containerd image store (kind#3795): `load docker-image` fails in ctr,
# `load image-archive` works; the archive is checked to be a real `docker save` tarball.
STAND_IN = """#!/bin/sh
echo "$*" >> "$STAND_IN_LOG"
case "$1 $2" in
  "load docker-image")
    echo 'ERROR: failed to load image: command "docker exec --privileged -i i14c-control-plane ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -" failed with error: exit status 1' >&2
    echo 'ctr: content digest sha256:0123: not found' >&2
    exit 1;;
  "load image-archive")
    tar -tf "$3" | grep -q '^manifest.json$' || { echo "not an image archive: $3" >&2; exit 1; }
    cp "$3" "$STAND_IN_LOG.tar";;
  *) echo "unexpected: $*" >&2; exit 2;;
esac
"""  # noqa: E501


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kind = bin_dir / "kind"
    kind.write_text(STAND_IN)
    kind.chmod(kind.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "kind.log"
    monkeypatch.setenv("STAND_IN_LOG", str(log))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_kind_falls_back_to_an_image_archive(stand_in: Path, base_image: str) -> None:
    lines: list[str] = []
    done = ClusterImages("kind-i14c").load(base_image, lines.append)
    calls = stand_in.read_text().splitlines()
    assert calls[0] == f"load docker-image --name i14c {base_image}"
    assert calls[1].startswith("load image-archive ") and calls[1].endswith(" --name i14c")
    assert done is not None and "kind#3795" in done, done
    assert any("kind#3795" in line and "docker save" in line for line in lines), lines
    with tarfile.open(f"{stand_in}.tar") as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert any(base_image in tag for entry in manifest for tag in entry.get("RepoTags") or [])


def test_doctor_checks_the_cli_of_the_contexts_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no kind here
    check = doctor.cluster_cli(None, "kind-i14c")
    assert check.status == "fail" and "`kind`, which is not on PATH" in check.detail, check
    assert doctor.cluster_cli(None, "devloop-kubeapi").status == "skip"


def test_doctor_finds_the_stand_in(stand_in: Path) -> None:
    check = doctor.cluster_cli(None, "kind-i14c")
    assert check.status == "ok", check
