"""exec over a raw SPDY/3.1 upgrade, as kubectl up to 1.29 asks for it: the client opens one
stream per channel (`streamType` error, stdin, stdout, stderr, resize), the server answers
each, runs the process once all it needs are there, and writes the exit status on `error`
(a v4 Status; only a failure's message with the older protocols).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING

import docker.errors
from aiohttp import web

from tests.kubeapi import spdy
from tests.kubeapi.meta import Obj
from tests.kubeapi.spdyforward import take_over
from tests.kubeapi.stream import Exec, start_exec

if TYPE_CHECKING:
    from tests.kubeapi.app import KubeApiServer

PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
STREAM_WAIT = 30.0  # the kubelet's streamCreationTimeout


def protocol(request: web.Request) -> str | None:
    """The best exec protocol a raw SPDY/3.1 upgrade offers; None when it is not one."""
    if request.headers.get("Upgrade", "").lower() != "spdy/3.1":
        return None
    offered = [v.strip() for v in request.headers.getall("X-Stream-Protocol-Version", [])]
    return next((p for p in PROTOCOLS if p in offered), None)


async def pod_exec_spdy(
    server: KubeApiServer, request: web.Request, pod: Obj, chosen: str
) -> web.StreamResponse:
    started = await start_exec(server, request, pod)
    read, write, transport = await take_over(request, chosen)
    conn = spdy.Connection(read, write)
    wanted = {"error"} | {
        name
        for name, on in (
            ("stdin", started.stdin),
            ("stdout", started.stdout),
            ("stderr", started.stderr),
            ("resize", started.tty),
        )
        if on
    }
    streams: dict[str, spdy.Stream] = {}
    ready = asyncio.Event()

    async def opened(stream: spdy.Stream) -> None:
        streams[stream.headers.get("streamtype", "")] = stream
        if wanted <= streams.keys():
            ready.set()

    serving = asyncio.ensure_future(conn.serve(opened))
    inputs: list[asyncio.Future[None]] = []
    try:
        await asyncio.wait_for(ready.wait(), STREAM_WAIT)
        if "stdin" in streams:
            inputs.append(asyncio.ensure_future(_stdin(streams["stdin"], started)))
        if "resize" in streams:
            inputs.append(asyncio.ensure_future(_resize(server, streams["resize"], started)))
        while (chunk := await started.session.read()) is not None:
            target = streams.get("stdout" if chunk[0] == 1 else "stderr")
            if target is not None:
                await target.write(chunk[1])
        status = await started.exit_status(server)
        if chosen == PROTOCOLS[0]:
            await streams["error"].write(json.dumps(status).encode())
        elif status["status"] != "Success":
            await streams["error"].write(str(status["message"]).encode())
        for stream in streams.values():
            await stream.close()
    except TimeoutError:
        pass  # the client never opened its streams: nothing to tell it
    finally:
        for task in inputs:
            task.cancel()
        started.session.close()
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        transport.close()
    return web.Response(status=101)  # already sent; aiohttp finds the connection closed


async def _stdin(stream: spdy.Stream, started: Exec) -> None:
    while chunk := await stream.read():
        await started.session.write(chunk)
    started.session.close_stdin()


async def _resize(server: KubeApiServer, stream: spdy.Stream, started: Exec) -> None:
    pending = b""
    while chunk := await stream.read():
        pending += chunk
        decoder = json.JSONDecoder()
        text = pending.decode(errors="replace")
        with contextlib.suppress(ValueError):
            size, end = decoder.raw_decode(text)
            pending = text[end:].encode()
            with contextlib.suppress(docker.errors.APIError):
                server.docker.api.exec_resize(
                    started.exec_id, height=size.get("Height"), width=size.get("Width")
                )
