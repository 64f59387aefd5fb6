"""A Service record around a build context and one sync rule, for sync tests."""

from __future__ import annotations

from pathlib import Path

from devloop.model.project import Service, SyncRule


def service_at(context: Path, *rules: SyncRule) -> Service:
    return Service(
        name="web",
        image="web",
        context=context,
        dockerfile=context / "Dockerfile",
        target=None,
        build_args={},
        builder=None,
        manifests=(),
        archetype=None,
        values={},
        sync=rules,
        ports=(),
        env={},
        requires=(),
    )
