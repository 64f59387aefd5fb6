"""A fault-injection front: a TCP proxy between a client and the test API server that can
refuse, black-hole, delay and reset connections, and answer chosen requests with errors.

Each client connection gets its own upstream connection. Requests are read one at a time
(head + Content-Length body), matched against the rules by method and path regex, then
forwarded or answered by the front; after an Upgrade (exec, port-forward) bytes are piped
as they are. Responses are piped raw. Everything is switchable while connections are open:

    front = FaultFront(kube_api.url); front.start()
    front.add(Rule(action="status", status=503, method="PATCH", path=r"/apis/apps/"))
    front.blackhole(True)    # every connection, open or new, stops moving bytes (no FIN/RST)
    front.blackhole_open()   # the connections open now stop for good; new ones work (a NAT
                             # table or a load balancer that forgot them, a network change)
    front.reset_all()        # RST every open connection now
    front.refuse(True)       # new connections are closed as soon as they are accepted
    front.delay(2.0)         # each forwarded request waits this long first
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
import threading
from dataclasses import dataclass, field

REASONS = {
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden: injected by the fault front"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected by the fault front"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
}
PHRASES = {
    401: "Unauthorized",
    403: "Forbidden",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class Rule:
    """What to do with requests whose method and path (with query) match.

    action: "status" (answer `status` with a v1 Status body), "blackhole" (never answer,
    keep the connection open), "reset" (RST the connection), "delay" (forward after `delay`
    seconds), "drop" (close the connection with a FIN, no answer). `times`: how many matching
    requests it applies to (None: all); `hits` counts them.
    """

    action: str
    status: int = 503
    method: str | None = None
    path: str = ""
    delay: float = 0.0
    times: int | None = None
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return re.search(self.path, target) is not None


@dataclass
class Seen:
    method: str
    target: str
    action: str  # "forward" or the rule's action


@dataclass(eq=False)
class _Conn:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    held: asyncio.Event = field(default_factory=asyncio.Event)  # set: black-holed for good


def _status_response(code: int) -> bytes:
    reason, message = REASONS.get(code, ("InternalError", f"injected {code}"))
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
    ).encode()
    extra = "Retry-After: 1\r\n" if code == 429 else ""
    head = (
        f"HTTP/1.1 {code} {PHRASES.get(code, 'Error')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultFront:
    """The proxy; runs its own event loop in a thread. `url` is what clients connect to."""

    def __init__(self, upstream: str, port: int = 0) -> None:
        hostport = upstream.split("://", 1)[-1].rstrip("/")
        host, _, up_port = hostport.rpartition(":")
        self.upstream = (host or "127.0.0.1", int(up_port))
        self.port = port
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._refuse = False
        self._delay = 0.0
        self._flowing = threading.Event()
        self._flowing.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[_Conn] = set()
        self._unblocked: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- switches (thread-safe) -----------------------------------------------------------

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule and switch off blackhole, refuse and delay."""
        with self._lock:
            self.rules.clear()
        self._refuse, self._delay = False, 0.0
        self.blackhole(False)

    def refuse(self, on: bool = True) -> None:
        self._refuse = on

    def delay(self, seconds: float) -> None:
        self._delay = seconds

    def blackhole(self, on: bool = True) -> None:
        """Stop (or resume) moving bytes on every connection; nothing is closed."""
        if self._loop is None or self._unblocked is None:
            return
        unblocked = self._unblocked
        self._loop.call_soon_threadsafe(unblocked.clear if on else unblocked.set)

    def blackhole_open(self) -> int:
        """Black-hole the connections open now, for good (never a FIN or RST); new connections
        work. The number of connections held."""
        if self._loop is None:
            return 0

        async def hold() -> int:
            for conn in self._conns:
                conn.held.set()
            return len(self._conns)

        return asyncio.run_coroutine_threadsafe(hold(), self._loop).result(timeout=10)

    def reset_all(self) -> None:
        """RST every open connection (client and upstream side)."""
        if self._loop is None:
            return

        def reset() -> None:
            for conn in list(self._conns):
                _rst(conn.client)
                if conn.upstream is not None:
                    _rst(conn.upstream)

        self._loop.call_soon_threadsafe(reset)

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FaultFront:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="fault front", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fault front did not start")
        return self

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def start() -> None:
            self._unblocked = asyncio.Event()
            self._unblocked.set()
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None and self._unblocked is not None
            self._server.close()
            self._unblocked.set()
            for conn in list(self._conns):
                conn.client.transport.abort()
                if conn.upstream is not None:
                    conn.upstream.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop = None

    # -- the proxy ------------------------------------------------------------------------

    def _match(self, method: str, target: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, target):
                    rule.hits += 1
                    return rule
        return None

    async def _flow(self, conn: _Conn) -> None:
        assert self._unblocked is not None
        await self._unblocked.wait()
        if conn.held.is_set():
            await asyncio.Event().wait()  # until the connection is torn down

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refuse:
            writer.close()
            return
        conn = _Conn(writer)
        self._conns.add(conn)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            self._conns.discard(conn)
            _rst(writer)
            return
        conn.upstream = up_writer
        back = asyncio.ensure_future(self._pipe(up_reader, writer, conn))
        conn.tasks.append(back)
        try:
            await self._requests(reader, up_writer, writer, conn)
            if up_writer.can_write_eof():
                up_writer.write_eof()  # the client is done sending: let the server finish
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await back
            self._conns.discard(conn)
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, conn: _Conn
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                await self._flow(conn)
                data = await src.read(65536)
                await self._flow(conn)
                if not data:
                    break
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(Exception):
            if dst.can_write_eof():
                dst.write_eof()

    async def _requests(
        self,
        reader: asyncio.StreamReader,
        upstream: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        conn: _Conn,
    ) -> None:
        while True:
            await self._flow(conn)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            await self._flow(conn)
            lines = head.decode("latin-1").split("\r\n")
            method, target = [*lines[0].split(" "), "", ""][:2]
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length") or 0))
            rule = self._match(method, target)
            self.seen.append(Seen(method, target, rule.action if rule else "forward"))
            if rule is not None:
                if rule.action == "status":
                    client.write(_status_response(rule.status))
                    await client.drain()
                    continue
                if rule.action == "blackhole":
                    await asyncio.Event().wait()  # until the connection is torn down
                if rule.action == "reset":
                    _rst(client)
                    return
                if rule.action == "drop":
                    client.close()
                    return
                if rule.action == "delay":
                    await asyncio.sleep(rule.delay)
            if self._delay:
                await asyncio.sleep(self._delay)
            upstream.write(head + body)
            await upstream.drain()
            if headers.get("upgrade"):
                await self._pipe(reader, upstream, conn)
                return
