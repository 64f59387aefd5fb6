"""The `builder: {command: ...}` escape hatch: a user's shell command builds $IMAGE (buildx,
kaniko, bazel...)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping

from devloop.build.output import BuildLog
from devloop.errors import BuildError
from devloop.model.project import Service


class CommandBuild:
    """Runs `svc.builder` with IMAGE, CONTEXT, DOCKERFILE and PUSH_IMAGE set, in the build context.

    With PUSH_IMAGE=true the command may push the image itself; devloop pushes it when it did not.
    Build args (those of `requires` included) are set as environment variables too.
    """

    def __init__(self, push: bool) -> None:
        self._push = push

    def __call__(
        self, svc: Service, ref: str, build_args: Mapping[str, str], on_line: Callable[[str], None]
    ) -> None:
        command = svc.builder or ""
        log = BuildLog(on_line)
        what = f"build of {svc.name} ({ref}) with `{command}` failed"
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", command],
                cwd=svc.context,
                env=self._env(svc, ref, build_args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            raise BuildError(f"{what}: cannot start /bin/sh: {exc}") from None
        assert proc.stdout is not None
        with proc:
            for raw in proc.stdout:
                log.line(raw.decode(errors="replace"))
        if proc.returncode != 0:
            raise BuildError(log.failure(what, f"the command exited with code {proc.returncode}"))

    def _env(self, svc: Service, ref: str, build_args: Mapping[str, str]) -> dict[str, str]:
        return {
            **os.environ,
            **build_args,
            "IMAGE": ref,
            "CONTEXT": str(svc.context),
            "DOCKERFILE": str(svc.dockerfile),
            "PUSH_IMAGE": "true" if self._push else "false",
        }
