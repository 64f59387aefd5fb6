"""The live view and its keys in a real terminal: `devloop dev` in a tmux pane (160x50), edits
and key presses, and what the screen shows (tmux capture-pane)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.devproc import eventually, free_port, http_get

pytestmark = [pytest.mark.docker]

DOCKERFILE = """\
FROM devloop/busybox:latest
COPY notes.txt /notes.txt
RUN sleep 3
COPY site /www
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""

CONFIG = """\
name: {name}
services:
  web:
    image: devloop-test-tty/{name}
    context: app
    archetype: web
    ports: ["{port}:8080"]
    sync:
      - {{src: "site/**", dest: /www}}
"""


class Pane:
    """One tmux server of its own (-L) with one 160x50 window running a command."""

    def __init__(self, command: str, cwd: Path) -> None:
        self.socket = f"devloop-test-{uuid.uuid4().hex[:8]}"
        self._tmux("new-session", "-d", "-x", "160", "-y", "50", "-s", "t", "-c", str(cwd), command)

    def _tmux(self, *args: str) -> str:
        tmux = shutil.which("tmux")
        assert tmux, "tmux is missing: .ci/install.sh installs it from Debian"
        done = subprocess.run(
            [tmux, "-L", self.socket, *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t")

    def press(self, key: str) -> None:
        self._tmux("send-keys", "-t", "t", "-l", key)

    def tty(self) -> str:
        return self._tmux("display-message", "-p", "-t", "t", "#{pane_tty}").strip()

    def wait_for(self, pattern: str, timeout: float = 60.0) -> str:
        """The screen once `pattern` (a regex) shows on it."""
        found = re.compile(pattern, re.MULTILINE)
        try:
            return str(
                eventually(lambda: found.search(self.screen()) and self.screen(), timeout, 0.1)
            )
        except AssertionError:
            screen = self.screen()
            raise AssertionError(f"{pattern!r} never showed; the screen:\n{screen}") from None

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def project(
    tmp_path: Path, docker_client: docker.DockerClient, base_image: str
) -> Iterator[tuple[Path, str, int]]:
    name = f"tt{uuid.uuid4().hex[:8]}"
    port = free_port()
    (tmp_path / "app/site").mkdir(parents=True)
    (tmp_path / "app/Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "app/site/index.html").write_text("one\n")
    (tmp_path / "app/notes.txt").write_text(f"{name}\n")  # BuildKit's cache outlives images
    (tmp_path / "devloop.yaml").write_text(CONFIG.format(name=name, port=port))
    yield tmp_path, name, port
    label = {"label": f"app.kubernetes.io/part-of={name}"}
    for c in docker_client.containers.list(all=True, filters=label):
        c.remove(force=True)
    for n in docker_client.networks.list(filters=label):
        n.remove()
    for img in docker_client.images.list(name=f"devloop-test-tty/{name}"):
        docker_client.images.remove(img.id, force=True)


def test_keys_and_live_view_in_a_real_terminal(
    project: tuple[Path, str, int], docker_client: docker.DockerClient
) -> None:
    root, name, port = project
    url = f"http://127.0.0.1:{port}"
    dev = f"{shlex.quote(sys.executable)} -m devloop dev --trigger manual"
    terminal = "env -u NO_COLOR -u COLUMNS -u LINES TERM=xterm-256color"
    pane = Pane(f"{terminal} {dev}; echo EXIT=$?; sleep 120", root)
    try:
        pane.wait_for(r"^web +● ready +\w{12} .*http://127\.0\.0\.1:" + str(port), 180)
        assert "r rebuild · R restart · t trigger · p pause" in pane.screen()

        # manual trigger: the edit waits, its count on the service's line; t syncs it
        (root / "app/site/index.html").write_text("two\n")
        pane.wait_for(r"^web .*1 change\(s\) wait \(t\)")
        assert http_get(f"{url}/index.html") == (200, "one\n")
        pane.press("t")
        screen = pane.wait_for(r"\[web\] synced /www/index\.html \(4 B\) in \d+ ms")
        assert re.search(r"^web +● ready .*synced index\.html \d+ ms", screen, re.M), screen
        assert http_get(f"{url}/index.html") == (200, "two\n")

        # a build input: after t, the build's progress on the service's line while it runs
        (root / "app/notes.txt").write_text(f"{name} b\n")
        pane.wait_for(r"^web .*1 change\(s\) wait \(t\)")
        pane.press("t")
        pane.wait_for(r"^web +◐ building +━{5,8}─{2,5}  step 3/\d RUN sleep 3 +\d+\.\d s", 60)
        pane.wait_for(r"\[web\] built devloop-test-tty/\S+ in \d+\.\d s")
        pane.wait_for(r"^web +● ready ", 60)

        # r: a rebuild and new containers though nothing changed
        before = {c.id for c in docker_client.containers.list(filters=_label(name))}
        pane.press("r")
        pane.wait_for(r"\[web\] rebuild requested\n(.*\n)*\[web\] built .*\n(.*\n)*\[web\] ready")
        after = {c.id for c in docker_client.containers.list(filters=_label(name))}
        assert after and not after & before

        # R: the process restarted in place
        pane.press("R")
        pane.wait_for(r"\[web\] restarted process in ")
        pane.wait_for(r"^web +● ready .*restarts 1")

        # p: edits made while paused are kept, then come in as one batch
        pane.press("p")
        pane.wait_for(r"paused: edits are kept until resume")
        (root / "app/site/index.html").write_text("three\n")
        (root / "app/site/extra.html").write_text("x\n")
        pane.wait_for(r"PAUSED, 2 changed file\(s\) kept")
        pane.press("p")
        pane.wait_for(r"resumed: 2 changed file\(s\) kept while paused")
        pane.wait_for(r"^web .*2 change\(s\) wait \(t\)")  # manual mode: they wait for t
        pane.press("t")
        pane.wait_for(r"\[web\] synced /www/\w+\.html, /www/\w+\.html \(\d+ B\)")
        assert http_get(f"{url}/index.html") == (200, "three\n")

        # ? help, then q: the same exit as Ctrl-C, everything removed, the terminal restored
        pane.press("?")
        pane.wait_for(r"q  quit, as Ctrl-C")
        pane.press("q")
        pane.wait_for(r"^EXIT=130$", 60)
        assert docker_client.containers.list(all=True, filters=_label(name)) == []
        settings = subprocess.run(
            ["stty", "-a", "-F", pane.tty()], capture_output=True, text=True, check=True
        ).stdout.split()
        assert "icanon" in settings and "echo" in settings, settings
    finally:
        pane.close()


def _label(name: str) -> dict[str, str]:
    return {"label": f"app.kubernetes.io/part-of={name}"}


def test_plain_lines_when_stdout_is_not_a_terminal(project: tuple[Path, str, int]) -> None:
    root, _, _ = project
    dev = f"{shlex.quote(sys.executable)} -m devloop dev"
    log = root / "out.log"
    pane = Pane(f"{dev} > {log} 2>&1; echo EXIT=$?; sleep 120", root)
    try:
        eventually(lambda: log.exists() and "ready" in log.read_text(), 180, what="ready")
        (root / "app/site/index.html").write_text("two\n")
        eventually(lambda: "synced /www/index.html" in log.read_text(), 60, what="the sync")
        pane.press("q")  # keys still work: stdin is the terminal
        pane.wait_for(r"^EXIT=130$", 60)
        text = log.read_text()
        assert "\x1b[" not in text and "r rebuild · R restart" not in text, text
        assert re.search(r"\[web\] step 3/\d RUN sleep 3", text), text
    finally:
        pane.close()
