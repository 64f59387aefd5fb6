"""Deterministic YAML in and out for manifests.

PyYAML speaks YAML 1.1 like Kubernetes' own decoder does, so strings such as
'yes', 'on' or '0123' come out quoted and mean the same thing to kubectl,
Argo CD and Flux as they do to us.
"""

from __future__ import annotations

from typing import Any

import yaml

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def dump(data: Any) -> str:
    return str(
        yaml.dump(
            data,
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            width=4096,
        )
    )


def load_all(text: str) -> list[Any]:
    try:
        return list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise ValueError(" ".join(str(exc).split())) from None
