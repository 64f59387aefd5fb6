"""The sync payload on a real filesystem: path mapping, safety refusals, and the tar it encodes."""

from __future__ import annotations

import ctypes
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest

from devloop.errors import SyncError
from devloop.files.ignore import PathRules
from devloop.loop.plan import plan
from devloop.model.changes import Change
from devloop.model.project import Project, Service, SyncRule
from devloop.sync import payload as sync
from tests.sync_project import service_at

RULE = SyncRule(src="app/**", dest="/srv/app", then="none", strip="app")


def service(context: Path) -> Service:
    return service_at(context, RULE)


def members(payload: sync.Payload) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(payload.archive)) as tar:
        return {m.name: m for m in tar.getmembers()}


def write(root: Path, rel: str, text: str = "x", mode: int = 0o644) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_changed_files_map_under_dest_with_modes_and_content(tmp_path: Path) -> None:
    write(tmp_path, "app/main.py", "print(1)\n")
    write(tmp_path, "app/bin/run.sh", "#!/bin/sh\n", 0o755)
    batch = sync.batch_for(service(tmp_path), RULE, ["app/main.py", tmp_path / "app/bin/run.sh"])
    payload = sync.encode(batch)
    got = members(payload)
    assert set(got) == {"srv/app/main.py", "srv/app/bin/run.sh"}
    assert got["srv/app/bin/run.sh"].mode == 0o755
    assert got["srv/app/main.py"].mode == 0o644
    assert (payload.files, payload.deleted, payload.warnings) == (2, 0, ())
    # the directory between dest and run.sh must not be a symlink in the container, and the
    # files are written in place where a regular file is (anything else there goes first)
    listing = b"?/srv/app/bin\n=/srv/app/bin/run.sh\n=/srv/app/main.py\n"
    assert payload.deletes == listing
    header = f"7 {len(listing)} {len(payload.archive)} - 3\n".encode()
    assert payload.frame(7).startswith(header + listing)


def test_paths_gone_from_disk_become_deletes_whichever_list_they_came_in(tmp_path: Path) -> None:
    write(tmp_path, "app/recreated.py")
    batch = sync.batch_for(service(tmp_path), RULE, ["app/removed.py"], ["app/recreated.py"])
    assert batch.deletes == ("/srv/app/removed.py",)
    assert list(batch.adds) == ["/srv/app/recreated.py"]


def test_a_file_that_vanishes_before_encoding_is_deleted_instead(tmp_path: Path) -> None:
    path = write(tmp_path, "app/flash.txt")
    batch = sync.batch_for(service(tmp_path), RULE, ["app/flash.txt"])
    path.unlink()
    payload = sync.encode(batch)
    assert payload.deletes == b"/srv/app/flash.txt\n"
    assert (payload.files, payload.archive) == (0, b"")


@pytest.mark.parametrize("rel", ["../outside.txt", "app/../../outside.txt"])
def test_paths_outside_the_context_are_refused_with_a_warning(tmp_path: Path, rel: str) -> None:
    ctx = tmp_path / "ctx"
    write(tmp_path, "outside.txt")
    batch = sync.batch_for(service(ctx), RULE, [rel])
    assert len(batch) == 0
    assert "outside the build context" in batch.warnings[0]


@pytest.mark.parametrize("rel", ["app/../../etc/passwd", "../etc/passwd", "/etc/passwd"])
def test_container_path_refuses_anything_that_could_leave_dest(rel: str) -> None:
    with pytest.raises(SyncError, match="refused"):
        sync.container_path(RULE, rel)


def test_container_path_refuses_newlines_and_paths_outside_strip() -> None:
    with pytest.raises(SyncError, match="newline"):
        sync.container_path(RULE, "app/a\nb")
    with pytest.raises(SyncError, match="strip"):
        sync.container_path(RULE, "lib/x.py")


def test_a_symlink_out_of_the_context_is_refused_and_the_rest_syncs(tmp_path: Path) -> None:
    write(tmp_path, "secret.txt")
    ctx = tmp_path / "ctx"
    write(ctx, "app/ok.txt")
    (ctx / "app/leak").symlink_to(tmp_path / "secret.txt")
    payload = sync.encode(sync.batch_for(service(ctx), RULE, ["app/leak", "app/ok.txt"]))
    assert set(members(payload)) == {"srv/app/ok.txt"}
    assert (
        len(payload.warnings) == 1
        and "symlink points outside the build context" in payload.warnings[0]
    )


def test_a_symlink_inside_the_context_is_synced_as_a_relative_link(tmp_path: Path) -> None:
    write(tmp_path, "app/real.txt")
    (tmp_path / "app/rel").symlink_to("real.txt")
    (tmp_path / "app/abs").symlink_to(tmp_path / "app/real.txt")
    got = members(sync.encode(sync.batch_for(service(tmp_path), RULE, ["app/rel", "app/abs"])))
    assert got["srv/app/rel"].issym() and got["srv/app/rel"].linkname == "real.txt"
    assert got["srv/app/abs"].linkname == "real.txt"


def test_a_path_through_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "lib/mod.py")
    (tmp_path / "app").mkdir()
    (tmp_path / "app/lib").symlink_to(tmp_path / "lib")
    batch = sync.batch_for(service(tmp_path), RULE, ["app/lib/mod.py"])
    assert len(batch) == 0 and "symlink" in batch.warnings[0]


def test_fifos_are_skipped_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    os.mkfifo(tmp_path / "app/pipe")
    write(tmp_path, "app/ok.txt")
    payload = sync.encode(sync.batch_for(service(tmp_path), RULE, ["app/pipe", "app/ok.txt"]))
    assert set(members(payload)) == {"srv/app/ok.txt"}
    assert "FIFOs" in payload.warnings[0]


def test_a_new_directory_keeps_its_mode(tmp_path: Path) -> None:
    (tmp_path / "app/private").mkdir(parents=True)
    (tmp_path / "app/private").chmod(0o700)
    got = members(sync.encode(sync.batch_for(service(tmp_path), RULE, ["app/private"])))
    assert got["srv/app/private"].isdir() and got["srv/app/private"].mode == 0o700


def test_merge_lets_a_later_add_win_over_an_earlier_delete(tmp_path: Path) -> None:
    write(tmp_path, "app/a.txt")
    first = sync.Batch({}, ("/srv/app/a.txt", "/srv/app/b.txt"), str(tmp_path))
    second = sync.batch_for(service(tmp_path), RULE, ["app/a.txt"])
    merged = sync.merge([first, second])
    assert merged.deletes == ("/srv/app/b.txt",)
    assert list(merged.adds) == ["/srv/app/a.txt"]


def test_a_plan_with_two_rules_copies_one_file_to_both_places(tmp_path: Path) -> None:
    write(tmp_path, "app/shared.txt")
    other = SyncRule(src="app/*.txt", dest="/opt/copy", then="none", strip="")
    proj = Project(
        name="p",
        root=tmp_path,
        config_path=tmp_path / "devloop.yaml",
        profiles=(),
        target="docker",
        kube_context=None,
        namespace="default",
        allowed_contexts=(),
        rollout_timeout=60,
        registry=None,
        values={},
        ignore=(),
        services={"web": service_at(tmp_path, RULE, other)},
    )
    changes = [
        Change("modified", tmp_path / "app/shared.txt"),
        Change("deleted", tmp_path / "app/old.txt"),
    ]
    planned = plan(proj, ["web"], changes, PathRules(proj, ["web"])).service("web")
    assert planned is not None
    batch = sync.batch_for_plan(proj.services["web"], planned.syncs)
    assert set(batch.adds) == {"/srv/app/shared.txt", "/opt/copy/app/shared.txt"}
    assert set(batch.deletes) == {"/srv/app/old.txt", "/opt/copy/app/old.txt"}


def test_an_empty_batch_encodes_to_an_empty_frame(tmp_path: Path) -> None:
    payload = sync.encode(sync.Batch({}, (), str(tmp_path)))
    assert payload.frame(1) == b"1 0 0 - 0\n"


def test_an_unreadable_file_is_skipped_with_one_warning_and_the_rest_syncs() -> None:
    # root reads mode-000 files: drop the filesystem uid (and so CAP_DAC_OVERRIDE) to a plain
    # user's for the read, as for a developer's own session
    libc = ctypes.CDLL(None, use_errno=True)
    root = Path(tempfile.mkdtemp(prefix="i13-unreadable-"))
    try:
        root.chmod(0o755)
        write(root, "app/ok.txt", "fine", mode=0o644)
        secret = write(root, "app/secret.txt", "no", mode=0o000)
        batch = sync.batch_for(service(root), RULE, ["app/ok.txt", "app/secret.txt"])
        libc.setfsuid(65534)
        try:
            payload = sync.encode(batch)
        finally:
            libc.setfsuid(0)
        assert list(members(payload)) == ["srv/app/ok.txt"]
        assert payload.warnings == (
            f"skipped {secret}: cannot read it (Permission denied); it syncs once it is readable",
        )
    finally:
        shutil.rmtree(root)
