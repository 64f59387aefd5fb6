"""Batches applied through the sync channel into real busybox containers: what lands, and how."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from devloop.errors import SyncError
from devloop.model.project import SyncRule
from devloop.sync import payload as sync
from devloop.sync.channel import BatchFailed
from tests.sync_project import service_at

if TYPE_CHECKING:
    from tests.syncbox import Box

pytestmark = pytest.mark.docker

RULE = SyncRule(src="app/**", dest="/srv/app", then="none", strip="app")


def write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def payload(ctx: Path, changed: Sequence[str | Path], rule: SyncRule = RULE) -> sync.Payload:
    return sync.encode(sync.batch_for(service_at(ctx, rule), rule, changed))


def test_adds_overwrites_and_deletes_files_and_directories(
    tmp_path: Path, boxes: Callable[..., Box]
) -> None:
    box = boxes()
    channel = box.channel()
    long_name = "app/" + "d" * 90 + "/" + "f" * 120 + ".txt"  # needs tar's long-name extension
    write(tmp_path, "app/index.html", "v1")
    write(tmp_path, "app/sub/deep/data.txt", "deep")
    write(tmp_path, "app/unicodé.txt", "ü")
    write(tmp_path, long_name, "long")
    (tmp_path / "app/empty").mkdir()
    channel.apply(
        payload(
            tmp_path,
            ["app/index.html", "app/sub/deep/data.txt", "app/unicodé.txt", long_name, "app/empty"],
        )
    )
    assert box.cat("/srv/app/index.html") == "v1"
    assert box.cat("/srv/app/sub/deep/data.txt") == "deep"
    assert box.cat("/srv/app/unicodé.txt") == "ü"
    assert box.cat("/" + long_name.replace("app/", "srv/app/", 1)) == "long"
    assert box.sh("test -d /srv/app/empty")[0] == 0

    write(tmp_path, "app/index.html", "v2")
    (tmp_path / "app/sub/deep/data.txt").unlink()
    (tmp_path / "app/sub/deep").rmdir()
    channel.apply(payload(tmp_path, ["app/index.html", "app/sub/deep/data.txt", "app/sub/deep"]))
    assert box.cat("/srv/app/index.html") == "v2"
    assert box.sh("ls /srv/app/sub")[1] == ""
    channel.close()


def test_modes_are_preserved_and_a_synced_script_runs(
    tmp_path: Path, boxes: Callable[..., Box]
) -> None:
    box = boxes()
    write(tmp_path, "app/run.sh", "#!/bin/sh\necho ran-$1\n", 0o755)
    write(tmp_path, "app/secret.txt", "s", 0o600)
    box.channel().apply(payload(tmp_path, ["app/run.sh", "app/secret.txt"]))
    assert box.sh("/srv/app/run.sh ok") == (0, "ran-ok\n")
    assert box.sh("ls -l /srv/app/secret.txt")[1].startswith("-rw-------")


def test_files_are_owned_by_the_containers_user(tmp_path: Path, boxes: Callable[..., Box]) -> None:
    box = boxes(user="1000:1000")
    rule = SyncRule(src="app/**", dest="/tmp/dest", then="none", strip="app")
    write(tmp_path, "app/a/b.txt", "mine")
    box.channel().apply(payload(tmp_path, ["app/a/b.txt"], rule))
    owners = box.sh("ls -lnd /tmp/dest/a /tmp/dest/a/b.txt | awk '{print $3\":\"$4}'")[1].split()
    assert owners == ["1000:1000", "1000:1000"]


def test_the_channel_reports_a_failing_batch_and_keeps_working(
    tmp_path: Path, boxes: Callable[..., Box]
) -> None:
    box = boxes(user="1000:1000")
    bad = SyncRule(
        src="app/**", dest="/etc/app", then="none", strip="app"
    )  # not writable by uid 1000
    good = SyncRule(src="app/**", dest="/tmp/ok", then="none", strip="app")
    write(
        tmp_path, "app/x.txt", "x" * 200_000
    )  # bigger than a pipe buffer: the agent must drain it
    channel = box.channel()
    with pytest.raises(SyncError, match="Permission denied"):
        channel.apply(payload(tmp_path, ["app/x.txt"], bad))
    with pytest.raises(BatchFailed, match="Permission denied"):
        channel.apply(sync.encode(sync.Batch({}, ("/etc/passwd",), str(tmp_path))))
    ack = channel.apply(payload(tmp_path, ["app/x.txt"], good))
    assert ack.mode == "stream" and ack.seq == 3
    assert box.sh("test -f /etc/passwd")[0] == 0
    assert box.cat("/tmp/ok/x.txt") == "x" * 200_000


def test_200_one_file_batches_over_one_channel_all_land(
    tmp_path: Path, boxes: Callable[..., Box]
) -> None:
    box = boxes()
    opened: list[Sequence[str]] = []
    channel = box.channel(opened)
    for i in range(200):
        write(tmp_path, f"app/f{i:03}.txt", f"content {i}\n")
        ack = channel.apply(payload(tmp_path, [f"app/f{i:03}.txt"]), timeout=30)
        assert ack.seq == i + 1
    assert len(opened) == 1, "one long-lived exec carries every batch"
    assert box.sh("cat /srv/app/f*.txt")[1] == "".join(f"content {i}\n" for i in range(200))
    channel.close()


def test_a_batch_of_2000_files_lands_exactly(tmp_path: Path, boxes: Callable[..., Box]) -> None:
    box = boxes()
    names = [f"app/d{i % 20}/file{i}.txt" for i in range(2000)]
    for i, name in enumerate(names):
        write(tmp_path, name, f"{i}\n" * (i % 50))
    box.channel().apply(payload(tmp_path, names), timeout=120)
    code, out = box.sh("cd /srv/app && find . -type f | xargs md5sum")
    assert code == 0
    remote = {line.split()[1].removeprefix("./"): line.split()[0] for line in out.splitlines()}
    local = {
        n.removeprefix("app/"): hashlib.md5((tmp_path / n).read_bytes()).hexdigest() for n in names
    }
    assert remote == local


def test_a_symlink_replaced_by_a_directory_never_writes_outside_dest(
    tmp_path: Path, boxes: Callable[..., Box]
) -> None:
    box = boxes()
    channel = box.channel()
    write(tmp_path, "app/keep.txt", "keep")
    (tmp_path / "app/esc2").symlink_to("..")
    channel.apply(payload(tmp_path, ["app/keep.txt", "app/esc2"]))
    assert box.sh("readlink /srv/app/esc2")[1] == "..\n"

    # the link becomes a directory with a file: it must land in /srv/app/esc2, not /srv
    (tmp_path / "app/esc2").unlink()
    write(tmp_path, "app/esc2/x.txt", "inside")
    channel.apply(payload(tmp_path, ["app/esc2", "app/esc2/x.txt"]))
    assert box.sh("test -L /srv/app/esc2 || test -d /srv/app/esc2")[0] == 0
    assert box.sh("test -L /srv/app/esc2")[0] != 0
    assert box.cat("/srv/app/esc2/x.txt") == "inside"
    assert box.sh("test -e /srv/x.txt")[0] != 0

    # a file alone under a directory that is (still) a symlink in the container
    box.sh("rm -rf /srv/app/esc3 && ln -s / /srv/app/esc3")
    write(tmp_path, "app/esc3/y.txt", "y")
    channel.apply(payload(tmp_path, ["app/esc3/y.txt"]))
    assert box.sh("test -e /y.txt")[0] != 0
    assert box.cat("/srv/app/esc3/y.txt") == "y"


def test_a_directory_replaced_by_a_symlink(tmp_path: Path, boxes: Callable[..., Box]) -> None:
    box = boxes()
    channel = box.channel()
    write(tmp_path, "app/target/t.txt", "t")
    write(tmp_path, "app/sub/old.txt", "old")
    channel.apply(payload(tmp_path, ["app/target/t.txt", "app/sub/old.txt"]))
    (tmp_path / "app/sub/old.txt").unlink()
    (tmp_path / "app/sub").rmdir()
    (tmp_path / "app/sub").symlink_to("target")
    channel.apply(payload(tmp_path, ["app/sub", "app/sub/old.txt"]))
    assert box.sh("readlink /srv/app/sub")[1] == "target\n"
    assert box.cat("/srv/app/sub/t.txt") == "t"
    assert box.cat("/srv/app/target/t.txt") == "t"


@pytest.mark.parametrize("image", ["devloop/busybox", "devloop/debian:bookworm"])
def test_an_existing_file_is_rewritten_in_place_as_an_editor_does(
    tmp_path: Path, boxes: Callable[..., Box], image: str
) -> None:
    # watchers that hold a file's inode (chokidar, behind Vite and nodemon) lose a file
    # that is unlinked and recreated; busybox tar and GNU tar both replace it by default
    box = boxes(image=image)
    channel = box.channel()
    write(tmp_path, "app/main.js", "v1")
    channel.apply(payload(tmp_path, ["app/main.js"]))
    # a process holding the file open keeps the old inode from being reused
    box.container.exec_run(["sh", "-c", "exec 3</srv/app/main.js; sleep 60"], detach=True)
    inode = box.sh("ls -i /srv/app/main.js")[1].split()[0]
    write(tmp_path, "app/main.js", "v2, longer")
    channel.apply(payload(tmp_path, ["app/main.js"]))
    assert box.cat("/srv/app/main.js") == "v2, longer"
    assert box.sh("ls -i /srv/app/main.js")[1].split()[0] == inode
    write(tmp_path, "app/main.js", "v3")
    channel.apply(payload(tmp_path, ["app/main.js"]))
    assert box.cat("/srv/app/main.js") == "v3"  # truncated, not v3 + the rest of v2


@pytest.mark.parametrize("image", ["devloop/busybox", "devloop/debian:bookworm"])
def test_a_file_is_never_written_through_a_symlink_or_into_a_directory_in_its_place(
    tmp_path: Path, boxes: Callable[..., Box], image: str
) -> None:
    box = boxes(image=image)
    channel = box.channel()
    box.sh("mkdir -p /srv/app/dir/sub && echo outside > /outside && ln -s /outside /srv/app/link")
    write(tmp_path, "app/link", "synced")
    write(tmp_path, "app/dir", "now a file")
    channel.apply(payload(tmp_path, ["app/link", "app/dir"]))
    assert box.cat("/outside") == "outside\n"
    assert box.sh("test -L /srv/app/link")[0] != 0
    assert box.cat("/srv/app/link") == "synced"
    assert box.cat("/srv/app/dir") == "now a file"


def test_a_running_binary_is_replaced_since_it_cannot_be_rewritten_in_place(
    tmp_path: Path, boxes: Callable[..., Box]
) -> None:
    box = boxes(image="devloop/debian:bookworm")
    channel = box.channel()
    box.sh("mkdir -p /srv/app && cp /bin/sleep /srv/app/tool")
    box.container.exec_run(["/srv/app/tool", "60"], detach=True)
    assert box.sh("sleep 0.3; pidof tool || ps -e | grep -c tool")[0] == 0
    write(tmp_path, "app/tool", "#!/bin/sh\necho new\n", 0o755)
    channel.apply(payload(tmp_path, ["app/tool"]))  # ETXTBSY in place: replaced instead
    assert box.sh("/srv/app/tool") == (0, "new\n")
