"""exec and port-forward over WebSocket with the Kubernetes channel protocols (v4 / v5)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import docker.errors
from aiohttp import WSMsgType, web

from tests.kubeapi.dockerexec import ExecSession
from tests.kubeapi.dockerops import explain
from tests.kubeapi.meta import ApiError, Obj

if TYPE_CHECKING:
    from tests.kubeapi.app import KubeApiServer

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"


def refuse_spdy(request: web.Request, sub: str) -> None:
    """A SPDY request the SPDY handlers (spdyexec, spdyforward) did not take (an exec or
    port-forward protocol not spoken here): say so instead of failing obscurely."""
    upgrade = request.headers.get("Upgrade", "").lower()
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    spdy = upgrade.startswith("spdy")
    tunnelled = (
        upgrade == "websocket" and "SPDY/3.1+" in offered and "channel.k8s.io" not in offered
    )
    if spdy or tunnelled:
        how = "a SPDY/3.1 upgrade" if spdy else f"SPDY tunnelled over WebSocket ({offered})"
        raise ApiError(
            400,
            "BadRequest",
            f"{sub} over {how} is not supported by this test API server: it speaks "
            f"WebSocket with the {V5} / {V4} subprotocols, and SPDY/3.1 with "
            "v4.channel.k8s.io (exec) or portforward.k8s.io (port-forward)"
            + (" and ?ports=N in the query" if sub == "portforward" else ""),
        )


def _flag(query: Any, key: str, default: bool = False) -> bool:
    value = query.get(key)
    return default if value is None else str(value).lower() in ("true", "1")


def _frame(data: Any) -> tuple[int, bytes]:
    """(channel, payload) of a client frame; text frames carry the channel as their first char."""
    if isinstance(data, str):
        return ord(data[0]), data[1:].encode()
    return data[0], bytes(data[1:])


def _exit_status(code: int, argv: list[str]) -> Obj:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
        f"[{' '.join(argv)}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


@dataclass
class Exec:
    """A process started in a pod's container, its streams not yet attached to a client."""

    session: ExecSession
    exec_id: str
    argv: list[str]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    async def exit_status(self, server: KubeApiServer) -> Obj:
        api = server.docker.api
        loop = asyncio.get_running_loop()
        code = (await loop.run_in_executor(None, lambda: api.exec_inspect(self.exec_id)))[
            "ExitCode"
        ]
        return _exit_status(int(code or 0), self.argv)


async def start_exec(server: KubeApiServer, request: web.Request, pod: Obj) -> Exec:
    """Check the request as the kubelet does and start the process (ApiError when it cannot)."""
    query = request.query
    argv = query.getall("command", [])
    if not argv:
        raise ApiError(400, "BadRequest", "you must specify at least 1 command")
    run, cid = server.kubelet.container(pod, query.get("container"))
    if not run.running:
        raise ApiError(
            400,
            "BadRequest",
            f"container {run.spec['name']} is not valid for pod "
            f"{pod['metadata']['name']}: container not running ({cid[:12]})",
        )
    stdin, tty = _flag(query, "stdin"), _flag(query, "tty")
    stdout, stderr = _flag(query, "stdout", True), _flag(query, "stderr", True) and not tty
    loop = asyncio.get_running_loop()
    api = server.docker.api
    try:
        exec_id = (
            await loop.run_in_executor(
                None,
                lambda: api.exec_create(
                    cid, argv, stdout=stdout, stderr=stderr, stdin=stdin, tty=tty
                ),
            )
        )["Id"]
    except docker.errors.APIError as exc:
        raise ApiError(
            500, "InternalError", f"error executing command in container: {explain(exc)}"
        ) from None
    session = ExecSession(server.docker, exec_id, tty)
    await session.start()
    return Exec(session, exec_id, argv, stdin, stdout, stderr, tty)


async def pod_exec(server: KubeApiServer, request: web.Request, pod: Obj) -> web.StreamResponse:
    started = await start_exec(server, request, pod)
    session, exec_id = started.session, started.exec_id
    api = server.docker.api
    ws = web.WebSocketResponse(protocols=(V5, V4), autoping=True, max_msg_size=0)
    await ws.prepare(request)
    reader = asyncio.ensure_future(_exec_input(ws, session, api, exec_id))
    try:
        while (chunk := await session.read()) is not None:
            await ws.send_bytes(bytes([chunk[0]]) + chunk[1])
        status = await started.exit_status(server)
        await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
    finally:
        reader.cancel()
        session.close()
        await ws.close()
    return ws


async def _exec_input(
    ws: web.WebSocketResponse, session: ExecSession, api: Any, exec_id: str
) -> None:
    async for msg in ws:
        if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT) or not msg.data:
            continue
        channel, payload = _frame(msg.data)
        if channel == STDIN:
            await session.write(payload)
        elif channel == CLOSE and payload[:1] == bytes([STDIN]):
            session.close_stdin()
        elif channel == RESIZE:
            size = json.loads(payload)
            with contextlib.suppress(docker.errors.APIError):
                api.exec_resize(exec_id, height=size.get("Height"), width=size.get("Width"))
    session.close()  # the client went away: the process sees EOF on stdin


async def pod_portforward(
    server: KubeApiServer, request: web.Request, pod: Obj
) -> web.StreamResponse:
    ports = [int(p) for value in request.query.getall("ports", []) for p in value.split(",") if p]
    if not ports:
        raise ApiError(400, "BadRequest", "at least one port must be specified")
    worker = server.kubelet.worker(pod["metadata"]["namespace"], pod["metadata"]["name"])
    if worker is None or not worker.pod_ip or (pod.get("status") or {}).get("phase") != "Running":
        raise ApiError(400, "BadRequest", f"pod {pod['metadata']['name']} is not running")
    ws = web.WebSocketResponse(protocols=(V4,), autoping=True, max_msg_size=0)
    await ws.prepare(request)
    for index, port in enumerate(ports):
        for channel in (2 * index, 2 * index + 1):
            await ws.send_bytes(bytes([channel]) + struct.pack("<H", port))
    forwards = [
        _Forward(ws, index, port, worker.pod_ip, worker.pause or "")
        for index, port in enumerate(ports)
    ]
    await asyncio.gather(*(f.connect() for f in forwards))
    pumps = [asyncio.ensure_future(f.pump()) for f in forwards]
    inbound = asyncio.ensure_future(_forward_input(ws, forwards))
    waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(asyncio.gather(*pumps)), inbound}
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (*pumps, *waiters):
            task.cancel()
        for f in forwards:
            f.close()
        await ws.close()
    return ws


class _Forward:
    """One forwarded port: a TCP connection to the pod, data channel 2i, error channel 2i+1."""

    def __init__(
        self, ws: web.WebSocketResponse, index: int, port: int, ip: str, sandbox: str
    ) -> None:
        self.ws, self.index, self.port, self.ip, self.sandbox = ws, index, port, ip, sandbox
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.ip, self.port), timeout=10
            )
        except (OSError, TimeoutError) as exc:
            why = (
                "connection refused"
                if isinstance(exc, ConnectionRefusedError)
                else str(exc) or "timeout"
            )
            message = (
                f"error forwarding port {self.port} to pod {self.sandbox}, uid : failed to "
                f"connect to localhost:{self.port} inside namespace, IPv4: dial tcp4 "
                f"{self.ip}:{self.port}: connect: {why}"
            )
            await self.ws.send_bytes(bytes([2 * self.index + 1]) + message.encode())

    async def pump(self) -> None:
        if self.reader is None:
            return
        while data := await self.reader.read(65536):
            await self.ws.send_bytes(bytes([2 * self.index]) + data)

    async def send(self, data: bytes) -> None:
        if self.writer is not None:
            self.writer.write(data)
            await self.writer.drain()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _forward_input(ws: web.WebSocketResponse, forwards: list[_Forward]) -> None:
    async for msg in ws:
        if msg.type != WSMsgType.BINARY or not msg.data:
            continue
        channel, payload = _frame(msg.data)
        if channel % 2 == 0 and channel // 2 < len(forwards):
            await forwards[channel // 2].send(payload)
