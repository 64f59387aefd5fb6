"""SPDY/3.1, as far as kubectl's streams need it: framing, zlib header blocks with the SPDY/3
dictionary, streams opened by the client and answered by the server, pings.

kubectl speaks it for port-forward (tunnelled in WebSocket binary messages since 1.31, a raw
`Upgrade: SPDY/3.1` before) and for exec up to 1.29. Not modelled: flow control (windows are
never enforced nor updated, as Kubernetes' own spdystream does), SETTINGS, server-initiated
streams, priorities.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1,
    2,
    3,
    4,
    6,
    7,
    8,
    9,
)
FLAG_FIN = 0x01

# The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1): the
# length-prefixed names and values, then the run of common strings.
_WORDS = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200_OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
]
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
    "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
    "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, "
    "Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,"
    "application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch"
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = (
    b"".join(struct.pack(">I", len(w)) + w.encode() for w in (w.replace("_", " ") for w in _WORDS))
    + _TAIL.encode()
)

Read = Callable[[], Awaitable[bytes]]  # the next chunk of the byte stream; b"" at its end
Write = Callable[[bytes], Awaitable[None]]


@dataclass(eq=False)
class Stream:
    """A client-opened stream: its headers, what arrived on it, and whether the client is done."""

    id: int
    headers: dict[str, str]
    conn: Connection
    inbox: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)  # b"": the client's FIN
    closed: bool = False  # our side sent FIN

    async def write(self, data: bytes) -> None:
        if not self.closed and data:
            await self.conn.send_data(self.id, data)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.conn.send_data(self.id, b"", FLAG_FIN)

    async def read(self) -> bytes:
        return await self.inbox.get()


class Connection:
    """The server end of a SPDY/3.1 connection over any byte stream."""

    def __init__(self, read: Read, write: Write) -> None:
        self._read, self._write = read, write
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zdict=DICTIONARY)
        self._lock = asyncio.Lock()
        self.streams: dict[int, Stream] = {}

    async def _exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = await self._read()
            if not chunk:
                raise EOFError
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def _send(self, frame: bytes) -> None:
        async with self._lock:
            await self._write(frame)

    async def _control(self, kind: int, flags: int, data: bytes) -> None:
        await self._send(
            struct.pack(">HHI", 0x8000 | VERSION, kind, flags << 24 | len(data)) + data
        )

    async def send_data(self, stream: int, data: bytes, flags: int = 0) -> None:
        for i in range(0, max(len(data), 1), 0xFFFF):
            chunk = data[i : i + 0xFFFF]
            last = i + 0xFFFF >= len(data)
            await self._send(
                struct.pack(">II", stream, (flags if last else 0) << 24 | len(chunk)) + chunk
            )

    def _headers(self, block: bytes) -> dict[str, str]:
        raw = self._inflate.decompress(block)
        (count,) = struct.unpack(">I", raw[:4])
        pos, found = 4, {}
        for _ in range(count):
            (n,) = struct.unpack(">I", raw[pos : pos + 4])
            name = raw[pos + 4 : pos + 4 + n].decode().lower()
            pos += 4 + n
            (n,) = struct.unpack(">I", raw[pos : pos + 4])
            found[name] = raw[pos + 4 : pos + 4 + n].decode().split("\0")[0]
            pos += 4 + n
        return found

    def _block(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers)) + b"".join(
            struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode()
            for k, v in headers.items()
        )
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    async def serve(self, opened: Callable[[Stream], Awaitable[None]]) -> None:
        """Read frames until the connection ends: answer each new stream and hand it to
        `opened`, deliver data to its stream, answer pings."""
        with contextlib.suppress(EOFError, ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await self._exactly(8)
                word, flags_length = struct.unpack(">II", head)
                flags, length = flags_length >> 24, flags_length & 0xFFFFFF
                data = await self._exactly(length)
                if not word & 0x80000000:
                    stream = self.streams.get(word & 0x7FFFFFFF)
                    if stream is not None:
                        if data:
                            stream.inbox.put_nowait(data)
                        if flags & FLAG_FIN:
                            stream.inbox.put_nowait(b"")
                    continue
                kind = word & 0xFFFF
                if kind == SYN_STREAM:
                    sid = struct.unpack(">I", data[:4])[0] & 0x7FFFFFFF
                    stream = Stream(sid, self._headers(data[10:]), self)
                    self.streams[sid] = stream
                    await self._control(SYN_REPLY, 0, struct.pack(">I", sid) + self._block({}))
                    if flags & FLAG_FIN:
                        stream.inbox.put_nowait(b"")
                    await opened(stream)
                elif kind == PING:
                    await self._control(PING, 0, data)
                elif kind == RST_STREAM:
                    sid = struct.unpack(">I", data[:4])[0] & 0x7FFFFFFF
                    gone = self.streams.pop(sid, None)
                    if gone is not None:
                        gone.closed = True
                        gone.inbox.put_nowait(b"")
                elif kind == GOAWAY:
                    return
        for stream in self.streams.values():
            stream.inbox.put_nowait(b"")
