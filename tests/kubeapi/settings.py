"""Server knobs: back-off timings, grace cap, node identity."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    """Real-cluster timings by default; `fast()` shortens them for tests."""

    crash_backoff: float = 10.0
    crash_backoff_max: float = 300.0
    pull_backoff: float = 10.0
    pull_backoff_max: float = 300.0
    # ErrImagePull shows this long before the status turns into ImagePullBackOff.
    pull_error_shown: float = 2.0
    # Upper bound on terminationGracePeriodSeconds, so deleting pods never stalls a test.
    max_grace: float = 30.0
    pause_image: str = "devloop/busybox:latest"
    node_name: str = "devloop-test-control-plane"
    node_labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fast(cls) -> Settings:
        return cls(
            crash_backoff=0.5,
            crash_backoff_max=4.0,
            pull_backoff=1.0,
            pull_backoff_max=4.0,
            pull_error_shown=0.5,
            max_grace=2.0,
        )

    def labels(self) -> dict[str, str]:
        return {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
            "node-role.kubernetes.io/control-plane": "",
        } | self.node_labels


def go_duration(seconds: float) -> str:
    """Seconds as Go prints a time.Duration: 500ms, 10s, 1m20s, 5m0s."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, secs = divmod(round(seconds, 3), 60)
    text = f"{secs:g}s"
    return f"{int(minutes)}m{text}" if minutes else text
