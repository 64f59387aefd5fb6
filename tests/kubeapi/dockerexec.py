"""An exec session on the Docker Engine as an asyncio stream: raw upgraded socket, 8-byte frames."""

from __future__ import annotations

import asyncio
import json
import struct

import docker

from tests.kubeapi.dockerops import Docker


class ExecSession:
    """stdin writes go straight to the process; output comes back as (stream number, bytes)."""

    def __init__(self, docker_: Docker, exec_id: str, tty: bool) -> None:
        self.docker = docker_
        self.exec_id = exec_id
        self.tty = tty
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        """POST /exec/ID/start with Upgrade: tcp; the connection then carries the streams."""
        adapter = getattr(self.docker.api, "_custom_adapter", None)
        path = getattr(adapter, "socket_path", None) or "/var/run/docker.sock"
        self._reader, self._writer = await asyncio.open_unix_connection(path)
        body = json.dumps({"Detach": False, "Tty": self.tty}).encode()
        version = self.docker.api.api_version
        head = (
            f"POST /v{version}/exec/{self.exec_id}/start HTTP/1.1\r\nHost: docker\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        await self._writer.drain()
        status = await self._reader.readline()
        while (await self._reader.readline()) not in (b"\r\n", b""):
            pass
        if b" 101 " not in status and b" 200 " not in status:
            raise docker.errors.APIError(
                f"exec start failed: {status.decode(errors='replace').strip()}"
            )

    async def read(self) -> tuple[int, bytes] | None:
        """The next chunk of output as (1 stdout | 2 stderr, data); None at the end."""
        assert self._reader is not None
        if self.tty:
            data = await self._reader.read(65536)
            return (1, data) if data else None
        try:
            header = await self._reader.readexactly(8)
            stream, size = header[0], struct.unpack(">I", header[4:])[0]
            return stream, await self._reader.readexactly(size)
        except asyncio.IncompleteReadError:
            return None

    async def write(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)
        await self._writer.drain()

    def close_stdin(self) -> None:
        if self._writer is not None and self._writer.can_write_eof():
            self._writer.write_eof()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
