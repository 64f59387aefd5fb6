"""Line framing over a byte buffer, shared by the Docker and Kubernetes exec transports."""

from __future__ import annotations


def pop_line(buf: bytearray) -> bytes | None:
    """Take the first complete line off `buf` (without its newline), or None when there is none
    yet."""
    end = buf.find(b"\n")
    if end < 0:
        return None
    line = bytes(buf[:end]).rstrip(b"\r")
    del buf[: end + 1]
    return line


def tail_text(buf: bytearray) -> str:
    """What is left in `buf`, as text for an error message ('' when nothing)."""
    return bytes(buf).decode(errors="replace").strip()
