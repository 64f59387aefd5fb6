"""A build's progress read from its output: classic builder and BuildKit plain progress."""

from __future__ import annotations

from devloop.build.output import BuildLog
from devloop.build.progress import Progress, ProgressReader

CLASSIC = """\
Step 1/4 : FROM devloop/busybox:latest
 ---> 6dc336042f45
Step 2/4 : COPY notes.txt /notes.txt
 ---> Using cache
 ---> 1ce4d42f4403
Step 3/4 : RUN sleep 2
 ---> Running in 0a1b2c3d
Removing intermediate container 0a1b2c3d
 ---> ca539455a058
Step 4/4 : COPY site /www
 ---> c53fbedba3e0
Successfully built c53fbedba3e0
"""

BUILDKIT = """\
#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s
#4 [1/3] FROM docker.io/devloop/busybox
#4 CACHED
#5 [2/3] COPY notes.txt /notes.txt
#5 CACHED
#6 [3/3] RUN echo preparing; echo "no such thing" >&2; exit 3
#6 sha256:e7387505a13bf3ac20ef1999a73c10f4bb6ee242041504ab70ef090012a7270c
#6 0.263 preparing
#6 0.263 no such thing
#6 [3/3] RUN echo preparing; echo "no such thing" >&2; exit 3
#6 ERROR: executor failed running [/bin/sh -c echo]: exit code: 3
------
 > [3/3] RUN echo preparing; echo "no such thing" >&2; exit 3:
------
"""


def _read(text: str) -> list[Progress]:
    seen: list[Progress] = []
    reader = ProgressReader(seen.append)
    for line in text.splitlines():
        reader.line(line)
    return seen


def test_classic_steps_and_cache_hits() -> None:
    assert _read(CLASSIC) == [
        Progress(1, 4, 0, "FROM devloop/busybox:latest"),
        Progress(2, 4, 0, "COPY notes.txt /notes.txt"),
        Progress(2, 4, 1, "COPY notes.txt /notes.txt"),
        Progress(3, 4, 1, "RUN sleep 2"),
        Progress(4, 4, 1, "COPY site /www"),
    ]


def test_buildkit_steps_cached_vertices_and_a_step_said_twice() -> None:
    run = 'RUN echo preparing; echo "no such thing" >&2; exit 3'
    assert _read(BUILDKIT) == [
        Progress(1, 3, 0, "FROM docker.io/devloop/busybox"),
        Progress(1, 3, 1, "FROM docker.io/devloop/busybox"),
        Progress(2, 3, 1, "COPY notes.txt /notes.txt"),
        Progress(2, 3, 2, "COPY notes.txt /notes.txt"),
        Progress(3, 3, 2, run),
    ]
    assert _read("#9 [build 2/5] RUN make") == [Progress(2, 5, 0, "RUN make")]


def test_a_buildkit_failure_quotes_the_steps_output_without_its_bookkeeping() -> None:
    log = BuildLog(lambda line: None)
    for line in BUILDKIT.splitlines():
        log.line(line)
    message = log.failure("build of web failed", "executor failed running [/bin/sh -c echo]")
    assert message == (
        'build of web failed at [3/3] RUN echo preparing; echo "no such thing" >&2; exit 3: '
        "executor failed running [/bin/sh -c echo]\n"
        "  last output:\n    preparing\n    no such thing"
    )
