"""Image presence and pulls per imagePullPolicy, with ErrImagePull / ImagePullBackOff."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tests.kubeapi.dockerops import Docker, explain, has_registry_host
from tests.kubeapi.events import Recorder
from tests.kubeapi.meta import Obj
from tests.kubeapi.podstatus import Run
from tests.kubeapi.settings import Settings, go_duration


class Images:
    """Decides whether a container's image is ready, pulling it in the background if needed."""

    def __init__(self, docker: Docker, settings: Settings, recorder: Recorder) -> None:
        self.docker = docker
        self.settings = settings
        self.recorder = recorder

    def _ready(self, pod: Obj, run: Run, image: str, pulled: str) -> bool:
        info = self.docker.image(image)
        if info is None:
            return False
        digests = info.get("RepoDigests") or []
        run.image_id = digests[0] if digests else f"docker://{info['Id']}"
        run.image_ready = image
        self.recorder.record(pod, "Normal", "Pulled", pulled, "kubelet")
        return True

    def ensure(self, pod: Obj, run: Run, wake: Callable[[], None]) -> bool:
        """True when the image is present; else set run.waiting to why not."""
        image = run.spec["image"]
        if run.image_ready == image:
            return True
        state, now = run.pull, time.monotonic()
        if state.thread is not None and state.thread.is_alive():
            run.waiting = ("ContainerCreating", "")
            return False
        if state.result is not None:
            return self._finish_pull(pod, run, image)
        if now < state.backoff_until:
            if now >= state.error_until and run.waiting[0] == "ErrImagePull":
                run.waiting = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
                self.recorder.record(
                    pod, "Normal", "BackOff", f'Back-off pulling image "{image}"', "kubelet"
                )
                self.recorder.record(pod, "Warning", "Failed", "Error: ImagePullBackOff", "kubelet")
            return False
        policy = run.spec.get("imagePullPolicy", "IfNotPresent")
        present = f'Container image "{image}" already present on machine'
        if policy == "Never":
            if self._ready(pod, run, image, present):
                return True
            run.waiting = (
                "ErrImageNeverPull",
                f'Container image "{image}" is not present with pull policy of Never',
            )
            return False
        # Images named without a registry can only come from the local daemon (no Docker Hub here),
        # so an Always policy pulls only references that name a registry.
        if not (policy == "Always" and has_registry_host(image)) and self._ready(
            pod, run, image, present
        ):
            return True
        self._start_pull(pod, run, image, wake)
        return False

    def _start_pull(self, pod: Obj, run: Run, image: str, wake: Callable[[], None]) -> None:
        state = run.pull

        def pull() -> None:
            try:
                self.docker.pull(image)
                state.result = (True, "")
            except Exception as exc:
                state.result = (False, explain(exc))
            wake()

        self.recorder.record(pod, "Normal", "Pulling", f'Pulling image "{image}"', "kubelet")
        state.began = time.monotonic()
        state.result = None
        state.thread = threading.Thread(target=pull, name=f"pull {image}", daemon=True)
        state.thread.start()
        run.waiting = ("ContainerCreating", "")

    def _finish_pull(self, pod: Obj, run: Run, image: str) -> bool:
        state = run.pull
        assert state.result is not None
        ok, error = state.result
        state.result, state.thread = None, None
        took = go_duration(time.monotonic() - state.began)
        if ok and self._ready(pod, run, image, f'Successfully pulled image "{image}" in {took}'):
            state.failures = 0
            return True
        state.failures += 1
        delay = min(
            self.settings.pull_backoff * 2 ** (state.failures - 1), self.settings.pull_backoff_max
        )
        now = time.monotonic()
        state.backoff_until = now + delay
        state.error_until = now + min(self.settings.pull_error_shown, delay)
        message = f'Failed to pull image "{image}": {error or "not found after pull"}'
        run.waiting = ("ErrImagePull", message)
        self.recorder.record(pod, "Warning", "Failed", message, "kubelet")
        self.recorder.record(pod, "Warning", "Failed", "Error: ErrImagePull", "kubelet")
        return False
