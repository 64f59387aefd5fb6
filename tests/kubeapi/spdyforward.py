"""port-forward over SPDY/3.1, as kubectl speaks it: tunnelled in WebSocket binary messages
(`SPDY/3.1+portforward.k8s.io`, kubectl >= 1.31) or over a raw `Upgrade: SPDY/3.1` (older).

For each local connection kubectl opens two streams sharing a `requestID`: `error` (the
server writes a message there when the pod's port cannot be reached) and `data`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from tests.kubeapi import spdy
from tests.kubeapi.meta import ApiError, Obj

if TYPE_CHECKING:
    from tests.kubeapi.app import KubeApiServer

PROTOCOL = "portforward.k8s.io"
TUNNEL = f"SPDY/3.1+{PROTOCOL}"


def tunnelled(request: web.Request) -> bool:
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    return request.headers.get("Upgrade", "").lower() == "websocket" and TUNNEL in offered


def upgraded(request: web.Request, protocol: str) -> bool:
    """A raw `Upgrade: SPDY/3.1` offering `protocol` (X-Stream-Protocol-Version)."""
    offered = [v.strip() for v in request.headers.getall("X-Stream-Protocol-Version", [])]
    return request.headers.get("Upgrade", "").lower() == "spdy/3.1" and protocol in offered


class _Raw(asyncio.Protocol):
    """The connection's bytes once it has left HTTP (aiohttp upgrades only to WebSocket)."""

    def __init__(self) -> None:
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()

    def data_received(self, data: bytes) -> None:
        self.chunks.put_nowait(data)

    def eof_received(self) -> bool:
        self.chunks.put_nowait(b"")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.chunks.put_nowait(b"")


async def take_over(request: web.Request, protocol: str) -> tuple[spdy.Read, spdy.Write, Any]:
    """Answer 101 for a SPDY/3.1 upgrade and take the socket from aiohttp: (read, write, the
    transport to close)."""
    transport = request.transport
    assert transport is not None
    raw = _Raw()
    transport.set_protocol(raw)
    transport.write(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
        + f"X-Stream-Protocol-Version: {protocol}\r\n\r\n".encode()
    )

    async def write(data: bytes) -> None:
        if not transport.is_closing():
            transport.write(data)

    return raw.chunks.get, write, transport


async def pod_portforward_spdy(
    server: KubeApiServer, request: web.Request, pod: Obj
) -> web.StreamResponse:
    worker = server.kubelet.worker(pod["metadata"]["namespace"], pod["metadata"]["name"])
    if worker is None or not worker.pod_ip or (pod.get("status") or {}).get("phase") != "Running":
        raise ApiError(400, "BadRequest", f"pod {pod['metadata']['name']} is not running")
    ip, sandbox = worker.pod_ip, worker.pause or ""
    if not tunnelled(request):
        read, write, transport = await take_over(request, PROTOCOL)
        await serve(spdy.Connection(read, write), ip, sandbox)
        transport.close()
        return web.Response(status=101)  # already sent; aiohttp finds the connection closed
    ws = web.WebSocketResponse(protocols=(TUNNEL,), autoping=True, max_msg_size=0)
    await ws.prepare(request)

    async def read() -> bytes:
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.BINARY and msg.data:  # Go writes a frame field by field
                return bytes(msg.data)
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return b""

    await serve(spdy.Connection(read, ws.send_bytes), ip, sandbox)
    await ws.close()
    return ws


async def serve(conn: spdy.Connection, ip: str, sandbox: str) -> None:
    """Pair each request's error and data streams and forward them to the pod's port."""
    pairs: dict[str, dict[str, spdy.Stream]] = {}
    tasks: list[asyncio.Task[None]] = []

    async def opened(stream: spdy.Stream) -> None:
        request = pairs.setdefault(stream.headers.get("requestid", ""), {})
        request[stream.headers.get("streamtype", "")] = stream
        if "error" in request and "data" in request:
            pairs.pop(stream.headers.get("requestid", ""))
            tasks.append(asyncio.ensure_future(_forward(request, ip, sandbox)))

    try:
        await conn.serve(opened)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _forward(streams: dict[str, spdy.Stream], ip: str, sandbox: str) -> None:
    data, error = streams["data"], streams["error"]
    port = int(data.headers.get("port") or 0)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout=10)
    except (OSError, TimeoutError) as exc:
        why = "connection refused" if isinstance(exc, ConnectionRefusedError) else "timeout"
        await error.write(
            f"error forwarding port {port} to pod {sandbox}, uid : failed to connect to "
            f"localhost:{port} inside namespace, IPv4: dial tcp4 {ip}:{port}: connect: "
            f"{why}".encode()
        )
        await error.close()
        await data.close()
        return

    async def inbound() -> None:  # kubectl → pod, until kubectl closes its side
        while chunk := await data.read():
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    async def outbound() -> None:  # pod → kubectl, until the pod closes
        while chunk := await reader.read(65536):
            await data.write(chunk)

    try:
        with contextlib.suppress(ConnectionError, OSError):
            pump_in = asyncio.ensure_future(inbound())
            await outbound()
            pump_in.cancel()
    finally:
        writer.close()
        await data.close()
        await error.close()
