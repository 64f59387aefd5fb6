"""Which of kubernetes-validate's JSON schema folders the test server serves and validates
with: v1.31 (the version it reports), or the newest shipped before it when the installed
kubernetes-validate is older (the dependency floor tier installs 1.30, which stops at v1.30)."""

from __future__ import annotations

import functools
import re
from importlib import resources as importlib_resources
from importlib.resources.abc import Traversable

SERVED = (1, 31)


@functools.cache
def schema_dir(flavour: str) -> Traversable:
    """The `v1.N.0-<flavour>` folder ('local' or 'local-strict') to use."""
    root = importlib_resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    versions = []
    for entry in root.iterdir():
        m = re.fullmatch(rf"v(\d+)\.(\d+)\.0-{re.escape(flavour)}", entry.name)
        if m and (int(m[1]), int(m[2])) <= SERVED:
            versions.append(((int(m[1]), int(m[2])), entry))
    if not versions:
        raise RuntimeError(f"kubernetes-validate ships no {flavour} schemas up to v1.31")
    return max(versions, key=lambda v: v[0])[1]
