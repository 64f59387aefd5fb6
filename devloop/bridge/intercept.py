"""`dev --local SERVICE`: the local process, its outgoing forwards, and the relay in its place.

`LocalBridge.start()` runs in order: the outgoing forwards (and /etc/hosts block), the local
process with the pod's env, the relay in the service's place and the tunnel to it;
`close()` undoes them in reverse and is safe after a partial start.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from devloop.bridge import hosts
from devloop.bridge.env import LocalEnv, ServicePort
from devloop.bridge.forwards import Forward, Forwards, env_urls
from devloop.bridge.process import LocalProcess
from devloop.bridge.tunnel import Tunnel
from devloop.errors import ConfigError, DeployError
from devloop.model.events import (
    Emit,
    Error,
    Info,
    InterceptEnded,
    InterceptRelayed,
    InterceptStarted,
    WarningEvent,
)
from devloop.model.project import Project

READY_TIMEOUT = 60.0


class Relay(Protocol):
    """The target's half: put a relay in the service's place, reach it and the other services,
    and put the original back."""

    def start(self) -> None:
        """Run the relay (the original still serves)."""

    def dial(self) -> socket.socket:
        """A new stream to the relay's control port; OSError when it cannot be had now."""

    def release(self, sock: socket.socket) -> None:
        """`sock` from dial() is closed: free what carried it."""

    def connect_peer(self, service: str, port: int) -> socket.socket:
        """A new stream to `service:port` (another Service of the project)."""

    def take_over(self) -> None:
        """Move the original off the service's name, once the relay answers."""

    def restore(self) -> None: ...


@dataclass(frozen=True)
class Options:
    command: str | None = None  # --command; else local.command of devloop.yaml
    header: tuple[str, str] | None = None  # --intercept-header name=value
    env_urls: bool = False  # --env-urls: <SERVICE>_HOST / _PORT variables
    use_hosts: bool = True  # /etc/hosts entries when it is writable


def parse_header(text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value:
        raise ConfigError(f"--intercept-header wants NAME=VALUE, got {text!r}")
    return name.strip().lower(), value


def loopback_ip(project: str, index: int) -> str:
    """A loopback address per Service, in a /16 chosen by the project (127.x.y.z all loop)."""
    second = 20 + int(hashlib.sha256(project.encode()).hexdigest(), 16) % 200
    return f"127.{second}.{index // 250}.{index % 250 + 2}"


class LocalBridge:
    def __init__(
        self,
        project: Project,
        env: LocalEnv,
        peers: Sequence[ServicePort],
        relay: Relay,
        emit: Emit,
        options: Options,
    ) -> None:
        svc = project.services[env.service]
        command = options.command or (svc.local.command if svc.local else None)
        if not command:
            raise ConfigError(
                f"service '{env.service}' has no local command: give --command, or `local: "
                f"{{command: ...}}` in devloop.yaml"
            )
        self.project = project
        self.env = env
        self.command = command
        self.options = options
        self._emit = emit
        self._relay = relay
        self._peers = list(peers)
        self._forwards = Forwards(peers, relay.connect_peer)
        self._process: LocalProcess | None = None
        self._tunnel: Tunnel | None = None
        self._hosts = False
        self._relay_started = False

    def start(self) -> None:
        # blocks of devloops that are gone (killed): any project's, their names would shadow ours
        removed = hosts.remove(None) if hosts.writable() else 0
        if removed:
            self._emit(Info(f"removed {removed} stale /etc/hosts block(s) of a killed devloop"))
        forwards = self._start_forwards()
        variables = dict(self.env.env)
        if self.options.env_urls:
            variables.update(env_urls(forwards))
        svc = self.project.services[self.env.service]
        cwd = svc.local.cwd if svc.local else self.project.root
        self._process = LocalProcess(self.env.service, self.command, cwd, variables)
        self._process.start(self._emit)
        self._relay_started = True
        self._relay.start()
        self._tunnel = Tunnel(
            self._relay.dial,
            {p: p for p in self._listen_ports()},
            on_error=lambda m: self._emit(Error(m, service=self.env.service)),
            on_relayed=lambda port, n: self._emit(InterceptRelayed(self.env.service, port, n)),
            release=self._relay.release,
        )
        self._tunnel.start()
        if not self._tunnel.ready.wait(READY_TIMEOUT):
            raise DeployError(
                f"the relay for {self.env.service} did not answer devloop's tunnel within "
                f"{READY_TIMEOUT:.0f} s"
            )
        self._relay.take_over()
        self._emit(
            InterceptStarted(
                service=self.env.service,
                command=self.command,
                pid=self._process.pid,
                ports=list(self._listen_ports()),
                header="=".join(self.options.header) if self.options.header else None,
                forwards={f"{f.service}:{f.port}": f"{f.host}:{f.local}" for f in forwards},
                hosts=self._hosts,
            )
        )

    def exited(self) -> int | None:
        """The local process's exit code once it has ended."""
        return self._process.poll() if self._process else None

    def close(self) -> None:
        """Undo start() in reverse; the original is restored first, and whatever fails, the rest
        is still undone."""
        code = self.exited()
        if self._tunnel is not None:
            self._tunnel.stop()
        try:
            if self._relay_started:
                self._relay.restore()
        finally:
            if self._process is not None:
                self._process.stop()
            self._forwards.stop()
            if self._hosts:
                hosts.remove(self.project.name)
        tunnel = self._tunnel
        self._emit(
            InterceptEnded(
                self.env.service,
                tunnel.relayed if tunnel else 0,
                tunnel.failed if tunnel else 0,
                code,
            )
        )

    def _listen_ports(self) -> list[int]:
        return sorted({p.target for p in self.env.services} | set(self.env.ports))

    def _start_forwards(self) -> list[Forward]:
        names = sorted({p.service for p in self._peers})
        self._hosts = self.options.use_hosts and hosts.writable()
        if self._hosts:
            ips = {n: loopback_ip(self.project.name, i) for i, n in enumerate(names)}
            forwards = self._forwards.start(ips.__getitem__, same_port=True)
            if clash := hosts.taken(names):
                self._emit(
                    WarningEvent(
                        f"another devloop's /etc/hosts block maps {', '.join(clash)} already: "
                        "those names reach its services, not this project's (use --env-urls)"
                    )
                )
            hosts.add(self.project.name, [(ip, n) for n, ip in ips.items()])
            return forwards
        forwards = self._forwards.start(lambda _n: "127.0.0.1", same_port=False)
        if not self.options.env_urls:
            pairs = ", ".join(f"{f.service}:{f.port} at {f.host}:{f.local}" for f in forwards)
            why = (
                "--no-hosts"
                if not self.options.use_hosts
                else "cannot write /etc/hosts (needs root)"
            )
            self._emit(
                WarningEvent(
                    f"{why}: the other services' names do not resolve here; reach "
                    f"them at {pairs or 'nothing'}, or pass --env-urls for "
                    "<SERVICE>_HOST/<SERVICE>_PORT variables"
                )
            )
        return forwards
