"""The text view: what a person reads for each event."""

from __future__ import annotations

import io

from devloop.model.events import (
    BuildStarted,
    Changes,
    Crashed,
    Dashboard,
    Ready,
    Restarted,
    SyncDone,
)
from devloop.output import TextSink, tee


def test_a_restart_names_the_whole_container() -> None:
    out = io.StringIO()
    TextSink(out)(Restarted(service="ecoprobe", container="ecoprobe-init-web-0"))
    assert out.getvalue() == "[ecoprobe] restarted process in ecoprobe-init-web-0\n"


def test_a_crash_names_the_container_its_exit_code_and_how_often() -> None:
    out = io.StringIO()
    TextSink(out)(Crashed(service="web", container="shop-web-0", exit_code=137, restarts=2))
    assert out.getvalue() == (
        "[web] crashed shop-web-0 exited with code 137 (2 time(s) so far); started again\n"
    )


def test_ready_after_a_restart_says_how_long_after_the_save() -> None:
    out = io.StringIO()
    TextSink(out)(Ready(service="web", urls=["http://127.0.0.1:8080/"], ms=412.5))
    assert out.getvalue() == "[web] ready  http://127.0.0.1:8080/ (0.41 s after the save)\n"


def _sync(paths: list[str], files: int, deleted: int = 0) -> str:
    out = io.StringIO()
    event = SyncDone("web", "shop-web-0", files, deleted, 12, 13.2, paths=paths)
    TextSink(out)(event)
    return out.getvalue()


def test_a_sync_names_its_file() -> None:
    assert _sync(["/www/index.html"], 1) == "[web] synced /www/index.html (12 B) in 13 ms\n"


def test_a_large_sync_names_three_files_and_counts_the_rest() -> None:
    paths = [f"/www/{i}.html" for i in range(20)]
    assert _sync(paths, 24, deleted=1) == (
        "[web] synced /www/0.html, /www/1.html, /www/2.html and 22 more (12 B, 1 deleted) "
        "in 13 ms\n"
    )


def test_a_rebuild_says_which_file_caused_it() -> None:
    out = io.StringIO()
    view = TextSink(out)
    view(BuildStarted("web", "shop/web"))  # the first build: nothing changed
    view(Changes(1, ["app/requirements.txt"]))
    view(BuildStarted("web", "shop/web"))
    assert out.getvalue().splitlines() == [
        "[web] building shop/web",
        "[web] building shop/web (changed: app/requirements.txt)",
    ]


def test_the_dashboard_url_is_printed_and_tee_hands_each_event_to_every_sink() -> None:
    out, seen = io.StringIO(), []
    tee(TextSink(out), seen.append)(Dashboard(url="http://127.0.0.1:10350/"))
    assert out.getvalue() == "dashboard  http://127.0.0.1:10350/\n"
    assert seen == [Dashboard(url="http://127.0.0.1:10350/")]
