"""Watch streams: one JSON event per line, from a resourceVersion, filtered by selectors."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.kubeapi.meta import ApiError, Obj
from tests.kubeapi.selectors import Matcher, matcher
from tests.kubeapi.store import Change

if TYPE_CHECKING:
    from tests.kubeapi.server import Api, Target

# The real server ends a watch after a random 30-60 minutes; clients re-watch from the last RV.
DEFAULT_TIMEOUT = 1800.0


def translate(change: Change, t: Target, match: Matcher) -> tuple[str, Obj] | None:
    """How a watch with this scope and selector sees a change (None: not at all)."""
    if t.namespace and change.obj["metadata"].get("namespace") != t.namespace:
        return None
    now = match(change.obj)
    before = change.old is not None and match(change.old)
    if change.type == "DELETED":
        return ("DELETED", change.obj) if now else None
    if change.type == "ADDED":
        return ("ADDED", change.obj) if now else None
    if now and before:
        return ("MODIFIED", change.obj)
    if now:
        return ("ADDED", change.obj)
    if before:
        return ("DELETED", change.obj)
    return None


def _initial(api: Api, t: Target, match: Matcher, rv_text: str | None) -> list[tuple[str, Obj]]:
    """What comes before live changes: the current state, or the history after a resourceVersion."""
    if rv_text in (None, "", "0"):
        return [("ADDED", o) for o in api.store.list(t.rt, t.namespace, match)]
    events = []
    for change in api.store.changes_since(int(rv_text)):
        if change.rt is t.rt and (seen := translate(change, t, match)):
            events.append(seen)
    return events


async def watch(api: Api, request: web.Request, t: Target) -> web.StreamResponse:
    match = matcher(request.query.get("labelSelector"), request.query.get("fieldSelector"))
    timeout = float(request.query.get("timeoutSeconds") or DEFAULT_TIMEOUT)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Change | None] = asyncio.Queue()

    def listener(change: Change) -> None:
        if change.rt is t.rt:
            loop.call_soon_threadsafe(queue.put_nowait, change)

    with api.store.lock:
        error: ApiError | None = None
        try:
            initial = _initial(api, t, match, request.query.get("resourceVersion"))
        except ApiError as exc:
            initial, error = [], exc
        api.store.add_listener(listener)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        if error is not None:
            await _send(response, "ERROR", error.status())
            return response
        for type_, obj in initial:
            await _send(response, type_, obj)
        await _follow(api, response, queue, t, match, time.monotonic() + timeout)
    finally:
        api.store.remove_listener(listener)
    return response


async def _follow(
    api: Api,
    response: web.StreamResponse,
    queue: asyncio.Queue[Change | None],
    t: Target,
    match: Matcher,
    deadline: float,
) -> None:
    closing: asyncio.Future[Any] = asyncio.ensure_future(api.closing.wait())
    getter: asyncio.Future[Any] | None = None
    try:
        while (left := deadline - time.monotonic()) > 0 and not api.closing.is_set():
            getter = getter or asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait(
                {getter, closing}, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            if getter not in done:
                continue
            change, getter = getter.result(), None
            if change is not None and (seen := translate(change, t, match)):
                await _send(response, *seen)
    finally:
        closing.cancel()
        if getter is not None:
            getter.cancel()


async def _send(response: web.StreamResponse, type_: str, obj: Obj) -> None:
    await response.write(json.dumps({"type": type_, "object": obj}).encode() + b"\n")


async def watch_guarded(api: Api, request: web.Request, t: Target) -> web.StreamResponse:
    """A client that goes away mid-stream ends the watch; that is not a server error."""
    try:
        return await watch(api, request, t)
    except ConnectionResetError:
        return web.Response(status=499)
