"""Build a project's images: content tags, skip what exists, dependency order in parallel,
then deliver."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

import docker

from devloop.build import buildkit, deliver, digest, hygiene
from devloop.build.command import CommandBuild
from devloop.build.docker import DockerBuild
from devloop.build.progress import ProgressReader
from devloop.clients.registry import RegistryError, manifest_digest, registry_of
from devloop.errors import BuildError
from devloop.model.events import (
    BuildDone,
    BuildProgress,
    BuildSkipped,
    BuildStarted,
    BuildStep,
    Emit,
    Info,
    WarningEvent,
)
from devloop.model.manifest import LABEL_PART_OF
from devloop.model.project import Project, Service

PARALLEL = 2


@dataclass(frozen=True)
class BuiltImage:
    service: str
    ref: str  # repo:tag
    digest: str | None  # the registry's manifest digest (sha256:…) when the image is in a registry
    skipped: bool  # no build was needed: the tag already existed
    pushed: bool  # the image is in the registry under `ref` (pushed now, or found there)


class ImageBuild(Protocol):
    """A way to build `ref` for `svc` (the Docker SDK, or the user's command)."""

    def __call__(
        self, svc: Service, ref: str, build_args: Mapping[str, str], on_line: Callable[[str], None]
    ) -> None: ...


def build_args(svc: Service, refs: Mapping[str, str]) -> dict[str, str]:
    """The service's build args plus `<NAME>_IMAGE` = the reference of each image it requires."""
    args = dict(svc.build_args)
    for dep in svc.requires:
        args[f"{dep.upper().replace('-', '_')}_IMAGE"] = refs[dep]
    return args


class Builder:
    """Builds services' images and delivers them: push when pushing, else load into a local
    cluster."""

    def __init__(
        self,
        project: Project,
        client: docker.DockerClient,
        emit: Emit,
        *,
        push: bool | None = None,
        target: deliver.ImageTarget | None = None,
        parallel: int = PARALLEL,
    ) -> None:
        self.project = project
        self.push = bool(project.registry) if push is None else push
        self.target: deliver.ImageTarget = target or deliver.LocalEngine()
        self._client = client
        self._emit = emit
        self._parallel = max(1, parallel)
        self._labels = {LABEL_PART_OF: project.name}
        self._docker: ImageBuild | None = None  # chosen at the first build (finding it: ~0.2 s)
        self._command = CommandBuild(self.push)

    def prune(self, running: Mapping[str, str]) -> None:
        """After a successful deploy: keep the newest `keep_images` tags of each image."""
        if self.push:
            return  # tags in a registry are the registry's business
        removed = hygiene.prune(self._client, self.project, running, self.project.keep_images)
        if removed:
            self._emit(Info(f"removed {len(removed)} old image tag(s): {', '.join(removed)}"))

    def build(
        self, names: Iterable[str] = (), *, force: Collection[str] = ()
    ) -> dict[str, BuiltImage]:
        """Build `names` and what they require (all services when empty); service → result.

        The services in `force` are built even when their tag already exists (a rebuild asked
        for by hand: the engine's cache still applies)."""
        order = self.project.closure(names)
        refs = digest.image_refs(self.project, order)
        unreachable = None if self.push else self.target.unreachable()
        if unreachable:
            self._emit(WarningEvent(unreachable))
        deps = {n: self.project.services[n].requires for n in order}
        results = schedule(
            order, deps, lambda n: self._one(n, refs, force=n in force), self._parallel
        )
        return {n: results[n] for n in order}

    def _one(self, name: str, refs: Mapping[str, str], *, force: bool = False) -> BuiltImage:
        svc, ref, started = self.project.services[name], refs[name], time.monotonic()
        if self.push and not force:
            remote = self._registry(ref, self._remote_digest)
            if remote:
                self._emit(BuildSkipped(name, ref, f"already in registry {registry_of(ref)}"))
                return BuiltImage(name, ref, remote, skipped=True, pushed=True)
        skipped = not force and self._exists_locally(ref)
        if skipped:
            self._emit(BuildSkipped(name, ref, "already built"))
        else:
            self._emit(BuildStarted(name, ref))
            if svc.builder:
                strategy: ImageBuild = self._command
            else:
                strategy = self._docker = self._docker or _engine_build(self._client, self._labels)
            strategy(svc, ref, build_args(svc, refs), self._on_line(name))
        pushed_digest = self._deliver(svc, ref)
        if not skipped:
            self._emit(
                BuildDone(name, ref, round((time.monotonic() - started) * 1000, 1), pushed_digest)
            )
        return BuiltImage(name, ref, pushed_digest, skipped=skipped, pushed=self.push)

    def _deliver(self, svc: Service, ref: str) -> str | None:
        on_line = self._on_line(svc.name)
        if self.push:
            # a builder command may have pushed the image itself (PUSH_IMAGE=true)
            found = self._registry(ref, self._remote_digest) if svc.builder else None
            pushed = found or self._registry(
                ref,
                lambda r: deliver.push(self._client, r, on_line, self.project.registry_insecure),
            )
            self._emit(Info(f"pushed {ref}" + (f"@{pushed}" if pushed else ""), svc.name))
            return pushed
        if svc.builder and not self._exists_locally(ref):
            raise BuildError(
                f"`{svc.builder}` succeeded but {ref} is not in the local Docker engine "
                "(with buildx, add --load; or set `registry` to push)"
            )
        done = self.target.load(ref, on_line)
        if done:
            self._emit(Info(done, svc.name))
        return None

    def _registry(self, ref: str, call: Callable[[str], str | None]) -> str | None:
        try:
            return call(ref)
        except RegistryError as exc:
            raise BuildError(
                f"cannot push {ref} to registry {exc.registry}: {exc.reason}"
            ) from None

    def _remote_digest(self, ref: str) -> str | None:
        return manifest_digest(ref, self.project.registry_insecure)

    def _exists_locally(self, ref: str) -> bool:
        try:
            self._client.api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as exc:
            raise BuildError(
                f"cannot inspect {ref} in the Docker engine: {exc.explanation or exc}"
            ) from None
        return True

    def _on_line(self, service: str) -> Callable[[str], None]:
        progress = ProgressReader(
            lambda p: self._emit(BuildProgress(service, p.step, p.steps, p.cached, p.text))
        )

        def on_line(line: str) -> None:
            self._emit(BuildStep(service, line))
            progress.line(line)

        return on_line


def _engine_build(client: docker.DockerClient, labels: Mapping[str, str]) -> ImageBuild:
    """BuildKit through the Docker CLI when the CLI and the engine have it, else the SDK's
    classic builder."""
    try:
        api = str(client.api.api_version)
    except (docker.errors.DockerException, AttributeError):
        api = "0"
    cli = buildkit.find_cli(api)
    return buildkit.BuildKitBuild(cli, labels) if cli else DockerBuild(client, labels)


def schedule(
    order: Iterable[str],
    deps: Mapping[str, Iterable[str]],
    work: Callable[[str], BuiltImage],
    parallel: int,
) -> dict[str, BuiltImage]:
    """Run `work` per name, each once its deps are done, at most `parallel` at a time; first
    error wins."""
    pending, done = list(order), {}
    running: dict[Future[BuiltImage], str] = {}
    error: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="devloop-build")
    try:
        while pending or running:
            ready = [n for n in pending if error is None and all(d in done for d in deps[n])]
            for name in ready:
                pending.remove(name)
                running[pool.submit(work, name)] = name
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                try:
                    done[name] = future.result()
                except Exception as exc:  # the others already started finish; nothing new starts
                    error = error or exc
    finally:
        pool.shutdown(wait=error is not None or not running, cancel_futures=True)
    if error is not None:
        raise error
    return done
