"""The validated project: immutable records the rest of devloop works from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

Target = Literal["auto", "docker", "kubernetes"]
Trigger = Literal["auto", "manual"]
CONFIG_NAME = "devloop.yaml"


@dataclass(frozen=True)
class SyncRule:
    src: str  # glob, relative to the service's build context, POSIX separators
    dest: str  # absolute directory in the container
    then: Literal["none", "restart"] | tuple[str, ...]  # a tuple is a command to exec
    strip: str  # leading part of the matched path to drop before joining with dest
    ignore: tuple[str, ...] = ()  # context-relative globs this rule leaves alone

    def destination(self, rel: str) -> str | None:
        """Container path for context-relative `rel`, or None when `strip` does not apply."""
        if self.strip:
            prefix = self.strip.rstrip("/") + "/"
            if not rel.startswith(prefix):
                return None
            rel = rel[len(prefix) :]
        return str(PurePosixPath(self.dest) / rel)


@dataclass(frozen=True)
class Port:
    local: int
    container: int


@dataclass(frozen=True)
class LocalRun:
    """How `dev --local` runs a service on this machine (`local:` in devloop.yaml)."""

    command: str | None  # a shell command; None: only --command gives one
    cwd: Path  # absolute
    env: Mapping[str, str]  # added to the pod's env, overriding it


@dataclass(frozen=True)
class Service:
    name: str
    image: str  # repository without tag, registry prefix included when one is set
    context: Path  # absolute
    dockerfile: Path  # absolute
    target: str | None
    build_args: Mapping[str, str]
    builder: str | None  # custom build command
    manifests: tuple[Path, ...]  # absolute template paths
    archetype: str | None
    values: Mapping[str, Any]
    sync: tuple[SyncRule, ...]
    ports: tuple[Port, ...]
    env: Mapping[str, str]
    requires: tuple[str, ...]
    trigger: Trigger = "auto"  # manual: changes wait for a trigger (a key, the dashboard)
    rebuild: tuple[str, ...] = ()  # context-relative globs that rebuild even when a rule syncs them
    local: LocalRun | None = None


@dataclass(frozen=True)
class Project:
    name: str
    root: Path
    config_path: Path
    profiles: tuple[str, ...]
    target: Target
    kube_context: str | None
    namespace: str
    allowed_contexts: tuple[str, ...]
    rollout_timeout: float
    registry: str | None
    values: Mapping[str, Any]
    ignore: tuple[str, ...]
    services: Mapping[str, Service] = field(default_factory=dict)
    keep_images: int = 3  # devloop-made tags kept per image
    registry_insecure: tuple[str, ...] = ()  # plain HTTP / unverified TLS allowed (as dockerd's)

    def closure(self, names: Iterable[str]) -> tuple[str, ...]:
        """`names` and everything they require, dependencies first (all services if empty)."""
        wanted = list(names) or list(self.services)
        order: list[str] = []

        def visit(n: str) -> None:
            if n in order:
                return
            for dep in self.services[n].requires:
                visit(dep)
            order.append(n)

        for n in wanted:
            visit(n)
        return tuple(order)
