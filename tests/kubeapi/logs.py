"""GET pods/NAME/log: Docker logs of the current or previous container, optionally followed."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.kubeapi.meta import Obj

if TYPE_CHECKING:
    from tests.kubeapi.app import KubeApiServer


def _options(query: Any) -> dict[str, Any]:
    def flag(key: str) -> bool:
        return str(query.get(key, "")).lower() in ("true", "1")

    options: dict[str, Any] = {"timestamps": flag("timestamps"), "tail": "all"}
    if query.get("tailLines"):
        options["tail"] = int(query["tailLines"])
    if query.get("sinceSeconds"):
        options["since"] = int(time.time()) - int(query["sinceSeconds"])
    if query.get("sinceTime"):  # RFC 3339; the kubelet keeps lines at or after it
        stamp = datetime.fromisoformat(str(query["sinceTime"]).replace("Z", "+00:00"))
        options["since"] = stamp.timestamp()
    return options


async def pod_logs(server: KubeApiServer, request: web.Request, pod: Obj) -> web.StreamResponse:
    query = request.query
    previous = str(query.get("previous", "")).lower() in ("true", "1")
    follow = str(query.get("follow", "")).lower() in ("true", "1") and not previous
    _, cid = server.kubelet.container(pod, query.get("container"), previous)
    options = _options(query)
    limit = int(query["limitBytes"]) if query.get("limitBytes") else None
    api = server.docker.api
    loop = asyncio.get_running_loop()
    if not follow:
        data: bytes = await loop.run_in_executor(None, lambda: api.logs(cid, **options))
        return web.Response(body=data[:limit] if limit else data, content_type="text/plain")
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    stream = await loop.run_in_executor(
        None, lambda: api.logs(cid, stream=True, follow=True, **options)
    )
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def pump() -> None:
        try:
            for chunk in stream:
                loop.call_soon_threadsafe(queue.put_nowait, chunk)
        except Exception:
            pass  # closed under us: the client went away
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name=f"logs {cid[:12]}", daemon=True).start()
    sent = 0
    try:
        while (chunk := await queue.get()) is not None:
            if limit is not None:
                chunk = chunk[: limit - sent]
            await response.write(chunk)
            sent += len(chunk)
            if limit is not None and sent >= limit:
                break
    except ConnectionResetError:
        pass  # the client stopped following
    finally:
        stream.close()
    return response
