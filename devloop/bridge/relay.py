"""The relay that stands in for a service while `dev --local` lasts (runs in its own container).

It listens on the service's ports and hands every accepted connection to devloop through one of
the idle connections devloop keeps open to its control port (a reverse tunnel: the laptop needs
no inbound reachability). With a header match (a personal intercept) only HTTP/1.x requests whose
head carries that header go to devloop; every other connection goes to the original workload.

Standard library only: this file is copied alone into the relay image.

Control protocol, one line each way before the bytes of the connection itself:
  devloop -> relay: ``DEVLOOP-TUNNEL 1``, relay -> devloop: ``IDLE`` (then both wait)
  relay -> devloop: ``CONN <port>``               (then the raw bytes, both ways)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable

HELLO = b"DEVLOOP-TUNNEL 1\n"
IDLE = b"IDLE\n"  # the relay's answer: the tunnel waits in its pool
OK = b"OK\n"  # devloop's answer to CONN: connected to the local process, bytes may flow
HEAD_LIMIT = 65536
WAIT_FOR_TUNNEL = 15.0
ANSWER_TIMEOUT = 12.0  # devloop's connect to the local process times out after 10 s
Pair = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Relay:
    def __init__(self, header: tuple[str, str] | None, original: str | None) -> None:
        self.header = header
        self.original = original
        self.idle: asyncio.Queue[Pair] = asyncio.Queue()
        self.relayed = 0

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await reader.readline()
        except (ConnectionError, asyncio.IncompleteReadError):
            hello = b""
        if hello != HELLO:
            writer.close()
            return
        writer.write(IDLE)
        await self.idle.put((reader, writer))

    async def accept(
        self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = b""
        try:
            to_local = True
            if self.header is not None:
                head = await _read_head(reader)
                to_local = matches(head, self.header)
            if to_local:
                peer = await self._handoff(port)
                if peer is None:
                    writer.close()
                    return
                peer[1].write(head)
                self.relayed += 1
            else:
                peer = await asyncio.open_connection(self.original, port)
                peer[1].write(head)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        await asyncio.gather(_pump(reader, peer[1]), _pump(peer[0], writer))

    async def _handoff(self, port: int) -> Pair | None:
        """A tunnel whose devloop end has connected to the local process. A pooled tunnel can be
        dead without a FIN having arrived (a port-forward stream that went away): the CONN then
        gets no OK, and the next tunnel is tried rather than closing the client unanswered."""
        while (peer := await self._tunnel(port)) is not None:
            peer[1].write(f"CONN {port}\n".encode())
            try:
                await peer[1].drain()
                answer = await asyncio.wait_for(peer[0].readline(), ANSWER_TIMEOUT)
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                answer = b""
            if answer == OK:
                return peer
            peer[1].close()
            if answer:  # devloop answered: the local process refused, another tunnel would too
                return None
        return None

    async def _tunnel(self, port: int) -> Pair | None:
        """An idle tunnel that is still open (devloop may have gone), waiting a while for one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_FOR_TUNNEL
        while (left := deadline - loop.time()) > 0:
            try:
                reader, writer = await asyncio.wait_for(self.idle.get(), left)
            except TimeoutError:
                break
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        print(f"relay: no tunnel from devloop for a connection to :{port}", flush=True)
        return None


def matches(head: bytes, header: tuple[str, str]) -> bool:
    """Whether an HTTP/1.x request head carries `header` (name case-insensitive, value exact)."""
    lines = head.split(b"\r\n")
    if len(lines) < 2 or not lines[0].rstrip().endswith((b"HTTP/1.1", b"HTTP/1.0")):
        return False
    name, value = header[0].lower().encode(), header[1].encode()
    for line in lines[1:]:
        key, sep, rest = line.partition(b":")
        if sep and key.strip().lower() == name and rest.strip() == value:
            return True
    return False


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    """The request line and headers (up to the blank line); less when the peer stops first."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < HEAD_LIMIT:
        chunk = await asyncio.wait_for(reader.read(4096), 30)
        if not chunk:
            break
        data += chunk
    return data


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        writer.close()


def _handler(
    relay: Relay, port: int
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await relay.accept(port, reader, writer)

    return handle


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="devloop-relay")
    parser.add_argument("--control", type=int, required=True)
    parser.add_argument("--listen", type=int, action="append", default=[])
    parser.add_argument("--header", default=None, help="NAME=VALUE: a personal intercept")
    parser.add_argument("--original", default=None, help="host of the original workload")
    parser.add_argument("--bind", default="0.0.0.0")
    args = parser.parse_args(argv)
    name, _, value = (args.header or "").partition("=")
    relay = Relay((name, value) if args.header else None, args.original)
    servers = [await asyncio.start_server(_handler(relay, p), args.bind, p) for p in args.listen]
    # the control port last: a tunnel that is answered finds the service's ports open
    servers.append(await asyncio.start_server(relay.control, args.bind, args.control))
    print(f"relay ready: control :{args.control}, ports {args.listen}", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(sys.argv[1:]))
