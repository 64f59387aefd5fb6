"""The sync channel's lifecycle against real containers: reopen, fallback, missing tools,
fan-out."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from devloop.errors import SyncError
from devloop.model.project import SyncRule
from devloop.runtime import supervisor
from devloop.runtime.base import Instance, StreamTimeout, Transport
from devloop.runtime.docker.stream import DockerTransport, docker_exec
from devloop.sync import payload as sync
from devloop.sync.channel import Channel, SyncUnavailable
from devloop.sync.pool import ChannelPool
from tests.sync_project import service_at

if TYPE_CHECKING:
    import docker

    from tests.syncbox import Box

pytestmark = pytest.mark.docker

RULE = SyncRule(src="app/**", dest="/srv/app", then="none", strip="app")


def edit(ctx: Path, rel: str, text: str) -> sync.Payload:
    path = ctx / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return sync.encode(sync.batch_for(service_at(ctx, RULE), RULE, [rel]))


def test_the_channel_reopens_after_the_container_restarts(
    tmp_path: Path, boxes: Callable[..., Box]
) -> None:
    box = boxes()
    opened: list[Sequence[str]] = []
    channel = box.channel(opened)
    channel.apply(edit(tmp_path, "app/a.txt", "before"))
    box.container.restart(timeout=0)  # kills the agent's exec with the old process
    ack = channel.apply(edit(tmp_path, "app/a.txt", "after"))
    assert box.cat("/srv/app/a.txt") == "after"
    assert (ack.mode, len(opened)) == ("stream", 2)


def test_falls_back_to_one_exec_per_batch_when_a_long_lived_agent_cannot_open(
    tmp_path: Path, boxes: Callable[..., Box]
) -> None:
    box = boxes()
    opened: list[Sequence[str]] = []
    real = box.opener(opened)

    def refuse_long_lived(argv: Sequence[str]) -> Transport:
        if argv[-1] != "once":
            raise SyncError("this runtime cannot keep an exec open")
        return real(argv)

    channel = Channel(refuse_long_lived, "box")
    acks = [channel.apply(edit(tmp_path, "app/a.txt", f"v{i}")) for i in range(3)]
    channel.close()
    assert [a.mode for a in acks] == ["exec"] * 3
    assert len(opened) == 3, "one exec per batch, the long-lived one not retried each time"
    assert box.cat("/srv/app/a.txt") == "v2"


def test_an_image_without_a_shell_is_unavailable(
    tmp_path: Path, boxes: Callable[..., Box], image_builder: Callable[..., str], base_image: str
) -> None:
    # a static binary that is not called sh: exec of `sh` fails inside the runtime
    image = image_builder(
        f"FROM {base_image} AS src\nFROM scratch\nCOPY --from=src /bin/busybox /bin/sleep\n"
    )
    box = boxes(image=image)
    with pytest.raises(SyncUnavailable, match="has no sh") as caught:
        box.channel().apply(edit(tmp_path, "app/a.txt", "x"))
    assert caught.value.missing == "sh"


def test_an_image_with_a_shell_but_no_tar_is_unavailable(
    tmp_path: Path, boxes: Callable[..., Box], image_builder: Callable[..., str], base_image: str
) -> None:
    # busybox's shell finds its own applets whatever the PATH, so use the host's dash: a
    # real POSIX sh with nothing else beside it (no tar, dd or rm)
    libc, loader = "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"
    if not (Path("/bin/dash").exists() and Path(libc).exists() and Path(loader).exists()):
        pytest.skip("needs the host's /bin/dash and glibc (x86_64 Debian)")
    image = image_builder(
        f"FROM {base_image} AS src\nFROM scratch\nCOPY dash /bin/sh\nCOPY libc.so.6 {libc}\n"
        f"COPY ld.so {loader}\nCOPY --from=src /bin/busybox /bin/sleep\n",
        {"dash": Path("/bin/dash"), "libc.so.6": Path(libc), "ld.so": Path(loader)},
    )
    box = boxes(image=image)
    with pytest.raises(SyncUnavailable, match="has no tar dd rm") as caught:
        box.channel().apply(edit(tmp_path, "app/a.txt", "x"))
    assert caught.value.missing == "tar dd rm"


def test_a_stopped_container_raises_a_sync_error_naming_it(
    tmp_path: Path, boxes: Callable[..., Box]
) -> None:
    box = boxes()
    box.container.kill()
    with pytest.raises(SyncError, match="is not running"):
        box.channel().apply(edit(tmp_path, "app/a.txt", "x"))


def test_a_batch_without_an_answer_times_out_and_the_next_one_reopens(
    tmp_path: Path, boxes: Callable[..., Box], docker_client: docker.DockerClient
) -> None:
    box = boxes()
    opened: list[Sequence[str]] = []

    def open_transport(argv: Sequence[str]) -> Transport:
        opened.append(argv)
        if len(opened) == 1:  # an agent that answers the ping, then never the batch
            hang = "echo ready 1; read seq rest; echo ok $seq; exec sleep 60"
            return DockerTransport(docker_client.api, box.id, ["sh", "-c", hang])
        return DockerTransport(docker_client.api, box.id, argv)

    channel = Channel(open_transport, "box")
    channel.warm()
    with pytest.raises(StreamTimeout, match="no answer"):
        channel.apply(edit(tmp_path, "app/a.txt", "lost"), timeout=0.5)
    channel.apply(edit(tmp_path, "app/a.txt", "next"))
    channel.close()
    assert len(opened) == 2 and box.cat("/srv/app/a.txt") == "next"


def test_a_stream_that_went_silent_is_replaced_within_the_ping_timeout(
    tmp_path: Path, boxes: Callable[..., Box], docker_client: docker.DockerClient
) -> None:
    """A connection dropped without a word: the agent never sees the batch, nothing says so."""
    box = boxes()
    opened: list[Sequence[str]] = []

    def open_transport(argv: Sequence[str]) -> Transport:
        opened.append(argv)
        if len(opened) == 1:  # ready, then deaf: what a black-holed connection looks like
            return DockerTransport(
                docker_client.api, box.id, ["sh", "-c", "echo ready 1; exec sleep 60"]
            )
        return DockerTransport(docker_client.api, box.id, argv)

    channel = Channel(open_transport, "box")
    channel.warm()
    started = time.monotonic()
    ack = channel.apply(edit(tmp_path, "app/a.txt", "landed"), timeout=30)
    took = time.monotonic() - started
    channel.close()
    assert box.cat("/srv/app/a.txt") == "landed"
    assert len(opened) == 2 and ack.mode == "stream"
    assert "stopped answering" in ack.warning and "reopened it" in ack.warning, ack
    assert took < 20, took  # the ping's few seconds, not the batch's 30


def instance(box: Box, generation: str = "1") -> Instance:
    return Instance("web", box.id, str(box.container.name), "img", generation)


def test_the_pool_syncs_every_instance_and_follows_generations(
    tmp_path: Path, boxes: Callable[..., Box], docker_client: docker.DockerClient
) -> None:
    one, two = boxes(), boxes()
    opened: list[str] = []

    def open_stream(inst: Instance, argv: Sequence[str]) -> Transport:
        opened.append(inst.id)
        return DockerTransport(docker_client.api, inst.id, argv)

    pool = ChannelPool(open_stream)
    try:
        outcomes = pool.sync(
            "web", [instance(one), instance(two)], edit(tmp_path, "app/a.txt", "both")
        )
        assert [o.error for o in outcomes] == [None, None]
        assert one.cat("/srv/app/a.txt") == two.cat("/srv/app/a.txt") == "both"

        pool.sync("web", [instance(one), instance(two)], edit(tmp_path, "app/a.txt", "again"))
        assert sorted(opened) == sorted([one.id, two.id]), "channels stay open between batches"

        pool.sync("web", [instance(one, "2")], edit(tmp_path, "app/a.txt", "new gen"))
        assert opened.count(one.id) == 2, "a new generation gets a new channel"
        assert two.cat("/srv/app/a.txt") == "again"
    finally:
        pool.close()


def test_the_pool_reports_each_instance_separately(
    tmp_path: Path, boxes: Callable[..., Box], docker_client: docker.DockerClient
) -> None:
    alive, dead = boxes(), boxes()
    dead.container.kill()
    pool = ChannelPool(lambda inst, argv: DockerTransport(docker_client.api, inst.id, argv))
    try:
        outcomes = pool.sync(
            "web", [instance(alive), instance(dead)], edit(tmp_path, "app/a.txt", "x")
        )
    finally:
        pool.close()
    assert outcomes[0].ack is not None and outcomes[0].error is None
    assert outcomes[1].ack is None and "not running" in str(outcomes[1].error)


def test_docker_exec_feeds_stdin_and_returns_the_exit_code(
    boxes: Callable[..., Box], docker_client: docker.DockerClient
) -> None:
    box = boxes()
    code, out = docker_exec(
        docker_client.api, box.id, ["sh", "-c", "wc -c; echo oops >&2; exit 3"], b"x" * 100_000
    )
    assert code == 3
    assert out.split() == [b"100000", b"oops"]


def test_the_agent_fits_an_exec_url() -> None:
    # On Kubernetes the agent travels in the exec request's query (command=sh&command=-c&
    # command=SCRIPT); fronts and servers refuse request lines past 8 KiB (the test API
    # server's aiohttp among them), so the script is sent without comments or indentation.
    from urllib.parse import quote

    from devloop.sync.channel import agent_script

    script = agent_script()
    assert "#" not in "".join(line[:1] for line in script.splitlines())
    assert len(quote(script, safe="")) < 6 * 1024


def test_a_restart_through_the_channel_restarts_the_supervised_process_each_time(
    tmp_path: Path, boxes: Callable[..., Box]
) -> None:
    app = ["sh", "-c", "echo $$ >> /tmp/starts; exec sleep 3600"]
    box = boxes(command=supervisor.wrap(app))
    channel = box.channel()
    channel.warm()
    # back to back: each one returns once the new process runs, none waits out the grace period
    assert [channel.restart(timeout=8) for _ in range(5)] == [True] * 5
    starts = box.cat("/tmp/starts").split()
    assert len(starts) == 6 and len(set(starts)) == 6
    channel.apply(edit(tmp_path, "app/a.txt", "after the restarts"))  # the channel still works
    assert box.cat("/srv/app/a.txt") == "after the restarts"


def test_an_unsupervised_container_is_left_to_the_runtime_to_restart(
    tmp_path: Path, boxes: Callable[..., Box]
) -> None:
    box = boxes()
    channel = box.channel()
    assert channel.restart() is False
    channel.apply(edit(tmp_path, "app/a.txt", "still syncing"))
    assert box.cat("/srv/app/a.txt") == "still syncing"
